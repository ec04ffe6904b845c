"""The LM-architecture u_{n+1} = (1 - k_n) u_n + k_n u_{n-1} + dt f_n(u_n)."""
import math

import pytest
import torch
from odes import A3, F64, Linear, observed_orders
from torch import nn

from odenets import Carry, ODENet, solvers

T = 1.0


def _frozen(net: ODENet) -> ODENet:
    for p in net.coefficients():
        p.requires_grad_(False)
    return net


@pytest.mark.parametrize("k", [-0.3, 0.5])
def test_frozen_k_converges_to_modified_equation(k):
    """With k fixed, LM is first order for (1 + k) u' = A u, solved by exp(A t / (1 + k))."""
    f = Linear(A3)
    u0 = torch.tensor([[1.0, -0.5, 0.25], [0.3, 0.2, -0.7]], dtype=F64)
    modified = Linear(A3 / (1 + k)).exact(u0, T)
    errors, plain = [], []
    for n in (20, 40, 80):
        net = _frozen(ODENet(f, "lm", steps=n, dt=T / n, k_init=k).double())
        assert all(math.isclose(c["k"].item(), k, rel_tol=1e-6) for c in net.coefs if "k" in c)
        out = net(u0)
        errors.append((out - modified).abs().max().item())
        plain.append((out - f.exact(u0, T)).abs().max().item())
    orders = observed_orders(errors)
    assert all(abs(q - 1) < 0.2 for q in orders), f"observed orders {orders}"
    assert min(plain) > 10 * errors[-1]  # and not to the solution of u' = A u


class Block(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, d))

    def forward(self, u):
        return self.net(u)


def _blocks(n, d=4):
    return [Block(d).double() for _ in range(n)]


def test_recurrence_by_hand():
    torch.manual_seed(0)
    blocks = _blocks(5)
    net = ODENet(blocks, "lm", dt=0.7).double()
    u0 = torch.randn(3, 4, dtype=F64)
    with torch.no_grad():
        prev, u = u0, u0 + 0.7 * blocks[0](u0)
        for n in range(1, 5):
            k = net.coefs[n]["k"]
            prev, u = u, (1 - k) * u + k * prev + 0.7 * blocks[n](u)
    torch.testing.assert_close(net(u0), u, rtol=1e-14, atol=1e-14)


def test_k_starts_uniform_in_paper_range():
    torch.manual_seed(0)
    net = ODENet(_blocks(40), "lm")
    ks = torch.stack([c["k"] for c in net.coefs if "k" in c])
    assert ks.shape == (39,)
    assert ((ks >= -0.1) & (ks <= 0)).all()
    assert ks.std() > 0.01  # drawn, not constant


def test_gradients_reach_every_used_k_and_every_module():
    """Without carry_in step 0 (no u_{-1}) owns no k, so no parameter is left unused."""
    torch.manual_seed(0)
    net = ODENet(_blocks(5), "lm").double()
    assert len(net.coefs[0]) == 0 and all("k" in net.coefs[n] for n in range(1, 5))
    net(torch.randn(3, 4, dtype=F64)).pow(2).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_carry_in_owns_a_k_at_step_0_that_the_chain_uses():
    torch.manual_seed(0)
    first, second = ODENet(_blocks(3), "lm").double(), ODENet(_blocks(3), "lm", carry_in=True).double()
    assert "k" in second.coefs[0]
    second.integrate(first.integrate(Carry(torch.randn(3, 4, dtype=F64)))).u.pow(2).sum().backward()
    for name, p in [*first.named_parameters(), *second.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


class Decay(nn.Module):
    def forward(self, u):
        return -u


@pytest.mark.parametrize("channels", [None, 2])
def test_gradients_equal_those_of_the_recurrence_written_out(channels):
    """The gradients of u_N with respect to u_0, the blocks' weights and every k_n equal
    autograd's through the recurrence written out with plain operations (the scheme
    adds f_n into the combination in place)."""
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Tanh()).double() for _ in range(4)]
    net = ODENet(blocks, "lm", dt=0.6, k_init=(-0.5, 0.5), channels=channels).double()
    u0 = torch.randn(3, 2, 4, 4, dtype=F64, requires_grad=True)
    weights = [u0, *nn.ModuleList(blocks).parameters()]
    ks = [c["k"] for c in net.coefs if "k" in c]
    got = torch.autograd.grad(net(u0).pow(2).sum(), weights + ks)
    prev, u = u0, u0 + 0.6 * blocks[0](u0)
    for n in range(1, 4):
        k = ks[n - 1] if channels is None else ks[n - 1].view(1, 2, 1, 1)
        prev, u = u, (1 - k) * u + k * prev + 0.6 * blocks[n](u)
    expected = torch.autograd.grad(u.pow(2).sum(), weights + ks)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


def test_per_channel_k_broadcasts_over_dim_1():
    """channels=C gives k of shape (C,); channel c follows (1 + k_c) u' = -u."""
    ks = torch.tensor([-0.4, 0.0, 0.3], dtype=F64)
    u0 = torch.randn(2, 3, 5, dtype=F64)
    errors = []
    for n in (20, 40, 80):
        net = _frozen(ODENet(Decay(), "lm", steps=n, dt=T / n, channels=3).double())
        for c in net.coefs:
            if "k" in c:
                assert c["k"].shape == (3,)
                c["k"].copy_(ks)
        exact = u0 * torch.exp(-T / (1 + ks)).view(1, 3, 1)
        errors.append((net(u0) - exact).abs().amax(dim=(0, 2)))
    errors = torch.stack(errors)
    for c in range(3):
        orders = observed_orders(errors[:, c].tolist())
        assert all(abs(q - 1) < 0.2 for q in orders), f"channel {c}: observed orders {orders}"


def test_per_step_channels_by_hand():
    """channels as a list gives step n a k of c_n entries, multiplying u's dim 1."""
    torch.manual_seed(0)
    blocks = [nn.Conv2d(2, 2, 3, padding=1).double() for _ in range(3)]
    net = ODENet(blocks, "lm", channels=[2, 2, 2]).double()
    u0 = torch.randn(4, 2, 5, 5, dtype=F64)
    with torch.no_grad():
        prev, u = u0, u0 + blocks[0](u0)
        for n in (1, 2):
            k = net.coefs[n]["k"].view(1, 2, 1, 1)
            assert not torch.equal(k[0, 0], k[0, 1])
            prev, u = u, (1 - k) * u + k * prev + blocks[n](u)
    torch.testing.assert_close(net(u0), u, rtol=1e-14, atol=1e-14)


def test_k_zero_is_a_resnet():
    torch.manual_seed(0)
    blocks = _blocks(4)
    u0 = torch.randn(3, 4, dtype=F64)
    with torch.no_grad():
        u = u0
        for b in blocks:
            u = u + b(u)
    assert math.isclose((ODENet(blocks, "lm", k_init=0.0)(u0) - u).abs().max().item(), 0.0, abs_tol=1e-14)


def test_per_channel_k_follows_the_state_dtype_under_autocast():
    """A bf16 state (autocast on the CPU) with a float32 per-channel k: the step runs in
    the state's dtype and gives the float32 step's values to bf16 precision."""
    torch.manual_seed(0)
    blocks = [nn.Conv2d(4, 4, 3, padding=1) for _ in range(3)]
    net = ODENet(blocks, "lm", channels=4, k_init=(-0.5, 0.5))
    u0 = torch.randn(2, 4, 5, 5)
    want = net(u0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = net(u0.bfloat16())
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=0.05, atol=0.05)


def test_per_channel_k_must_fit_the_state():
    net = ODENet([nn.Identity() for _ in range(3)], "lm", channels=4)
    with pytest.raises(ValueError, match="per-channel coefficient of 4 channels does not fit a state of shape"):
        net(torch.randn(2, 3))


@pytest.mark.parametrize("options, match", [
    (dict(k_init="ab"), "k_init must be a number or a range"),
    (dict(k_init=(0.1, 0.2, 0.3)), "k_init must be a number or a range"),
    (dict(k_init=(0.2, -0.1)), "low <= high"),
    (dict(channels=True), "channels must be None"),
    (dict(channels=0), "channels must be None"),
    (dict(channels=[4, 4]), "channels lists 2 channel counts, but the net has a step 2"),
])
def test_lm_options_are_checked_when_the_net_is_built(options, match):
    with pytest.raises(ValueError, match=match):
        ODENet([nn.Identity() for _ in range(3)], "lm", carry_in=True, **options)


# -- k_bounds: k = c + r tanh(k_raw) --------------------------------------------------------

def test_bounded_k_is_the_recurrence_with_k_from_its_raw_coefficient():
    torch.manual_seed(0)
    blocks = _blocks(4)
    net = ODENet(blocks, "lm", dt=0.7, k_bounds=(-0.5, 0.9)).double()
    assert all(set(net.coefs[n]) == {"k_raw"} for n in range(1, 4))
    u0 = torch.randn(3, 4, dtype=F64)
    with torch.no_grad():
        prev, u = u0, u0 + 0.7 * blocks[0](u0)
        for n in range(1, 4):
            k = 0.2 + 0.7 * torch.tanh(net.coefs[n]["k_raw"])  # centre 0.2, radius 0.7
            assert -0.1 <= k <= 0  # k_init's paper range, inside the bounds
            prev, u = u, (1 - k) * u + k * prev + 0.7 * blocks[n](u)
    torch.testing.assert_close(net(u0), u, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("raw", [-40.0, -3.0, 0.0, 3.0, 40.0])
def test_bounded_k_stays_inside_and_its_gradient_lives_near_the_bounds(raw):
    scheme = solvers.get("lm", k_bounds=(-0.8, 0.6))
    k_raw = torch.tensor(raw, dtype=F64, requires_grad=True)
    k = scheme.k(k_raw=k_raw)
    assert -0.8 <= k.item() <= 0.6
    (grad,) = torch.autograd.grad(k, k_raw)
    if abs(raw) <= 3:  # near a bound the gradient is small, never zero (a clamp's would be)
        assert grad.item() == pytest.approx(0.7 * (1 - math.tanh(raw) ** 2)) and grad.item() > 1e-3


def test_bounded_k_stays_inside_through_training_with_a_huge_rate():
    torch.manual_seed(0)
    net = ODENet(_blocks(5), "lm", k_bounds=(-0.9, 0.9)).double()
    optimizer = torch.optim.SGD(net.coefficients(), lr=1e4)
    for _ in range(5):
        optimizer.zero_grad()
        net(torch.randn(8, 4, dtype=F64)).pow(2).sum().backward()
        optimizer.step()
        ks = [net.scheme.k(**c) for c in net.coefs if c]
        assert all(-0.9 <= k.item() <= 0.9 for k in ks)


@pytest.mark.parametrize("options, message", [
    (dict(k_bounds=(-1.0, 0.5)), r"k_bounds must be \(lo, hi\) with -1 < lo < hi < 1"),
    (dict(k_bounds=(0.5, 0.2)), r"-1 < lo < hi < 1"),
    (dict(k_bounds=0.5), r"k_bounds must be"),
    (dict(k_bounds=(0.1, 0.5)), r"k_init \(-0.1, 0.0\) must lie strictly inside k_bounds \(0.1, 0.5\)"),
])
def test_bad_bounds_are_value_errors(options, message):
    with pytest.raises(ValueError, match=message):
        solvers.get("lm", **options)
