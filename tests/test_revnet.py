"""RevNet: forward Euler on the split system X' = F(Y), Y' = G(X); invertible steps, and
backpropagation that recomputes the states instead of storing them."""
import pytest
import torch
from odes import saved_bytes
from torch import nn

from odenets import ODENet

F64 = torch.float64


def mlp(d: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, d))


class TimedMLP(nn.Module):
    """F(t, y): the inverse must use the same t_n as the forward step."""

    def __init__(self, d: int = 4):
        super().__init__()
        self.f = mlp(d)

    def forward(self, t, y):
        return self.f(y) * (1 + t)


def _pairs(kind: str, steps: int):
    if kind == "shared":
        return (mlp(), mlp())
    if kind == "timed":
        return [(TimedMLP(), mlp()) for _ in range(steps)]
    return [(mlp(), mlp()) for _ in range(steps)]


def test_step_by_hand():
    torch.manual_seed(0)
    F, G = mlp(), mlp()
    u0 = torch.randn(3, 8)
    x, y = u0[:, :4], u0[:, 4:]
    for _ in range(3):
        x = x + 0.5 * F(y)
        y = y + 0.5 * G(x)
    torch.testing.assert_close(ODENet((F, G), "revnet", steps=3, dt=0.5)(u0), torch.cat((x, y), 1))


@pytest.mark.parametrize("kind", ["shared", "per_step", "timed"])
def test_inverse_after_100_steps_float32(kind):
    """float32, dt = 0.1 (a neural ODE over [0, 10]): u_0 back to 1e-5."""
    torch.manual_seed(0)
    net = ODENet(_pairs(kind, 100), "revnet", steps=100, dt=0.1, t0=0.5)
    u0 = torch.randn(8, 8)
    out = net(u0)
    assert (out - u0).abs().max() > 0.1  # the steps did something
    assert (net.inverse(out) - u0).abs().max() < 1e-5


def test_inverse_after_100_resnet_steps_float64():
    """dt = 1, 100 distinct blocks (a RevNet), in float64: u_0 back to 1e-10."""
    torch.manual_seed(0)
    net = ODENet(_pairs("per_step", 100), "revnet").double()
    u0 = torch.randn(8, 8, dtype=F64)
    assert (net.inverse(net(u0)) - u0).abs().max() < 1e-10


def _grads(net: ODENet, u0: torch.Tensor):
    u = u0.clone().requires_grad_(True)
    out = net(u)
    torch.autograd.backward(out, torch.cos(torch.arange(out.numel(), dtype=out.dtype)).view_as(out))
    grads = [u.grad] + [p.grad for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    return out.detach(), grads


@pytest.mark.parametrize("kind", ["shared", "per_step", "timed"])
def test_memory_efficient_gradients_equal_backprop(kind):
    torch.manual_seed(0)
    pairs = _pairs(kind, 8)
    u0 = torch.randn(5, 8, dtype=F64)
    plain = ODENet(pairs, "revnet", steps=8, dt=0.3).double()
    efficient = ODENet(pairs, "revnet", steps=8, dt=0.3, memory_efficient=True).double()
    out_p, grads_p = _grads(plain, u0)
    out_e, grads_e = _grads(efficient, u0)
    torch.testing.assert_close(out_e, out_p, rtol=1e-13, atol=1e-13)
    assert len(grads_e) == len(grads_p) == 1 + len(list(plain.parameters()))
    for ge, gp in zip(grads_e, grads_p):
        assert ge is not None and gp is not None
        torch.testing.assert_close(ge, gp, rtol=1e-10, atol=1e-12)


def test_memory_efficient_saves_no_more_for_more_steps():
    torch.manual_seed(0)
    u0 = torch.randn(16, 8)
    plain, efficient = [], []
    for steps in (10, 40):
        pairs = _pairs("per_step", steps)
        plain.append(saved_bytes(ODENet(pairs, "revnet"), u0))
        efficient.append(saved_bytes(ODENet(pairs, "revnet", memory_efficient=True), u0))
    assert efficient[1] <= efficient[0]
    assert plain[1] > 3 * plain[0]  # backprop stores activations of every step
    assert efficient[0] < plain[0]


def test_memory_efficient_refuses_a_trajectory():
    """A trajectory keeps every state, which memory_efficient=True exists to avoid: refused up front."""
    with pytest.raises(ValueError, match="return_trajectory keeps every state"):
        ODENet(_pairs("per_step", 4), "revnet", return_trajectory=True, memory_efficient=True)


def test_memory_efficient_backward_leaves_batchnorm_statistics_as_plain_backprop():
    """Re-running the steps in the backward pass must not count the batch again in the
    batch-norm running statistics: they end as plain backprop leaves them."""
    torch.manual_seed(0)

    def branch() -> nn.Module:
        return nn.Sequential(nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 4))

    pairs = [(branch(), branch()) for _ in range(3)]
    plain = ODENet(pairs, "revnet")
    u0 = torch.randn(16, 8)
    plain(u0).sum().backward()
    want = [b.clone() for name, b in plain.named_buffers()]
    for m in plain.modules():  # back to the initial statistics
        if isinstance(m, nn.BatchNorm1d):
            m.reset_running_stats()
    reversible = ODENet(pairs, "revnet", memory_efficient=True)
    reversible(u0).sum().backward()
    for w, (name, got) in zip(want, reversible.named_buffers()):
        torch.testing.assert_close(got, w, msg=name)


def test_memory_efficient_backward_reruns_the_steps_under_the_forward_autocast():
    """Under autocast the recomputed steps run in the same precision as the forward ones:
    the gradients are those of plain backprop under the same autocast."""
    torch.manual_seed(0)
    pairs = [(nn.Linear(4, 4), nn.Linear(4, 4)) for _ in range(3)]
    u0 = torch.randn(6, 8, requires_grad=True)
    grads = []
    for memory_efficient in (False, True):
        net = ODENet(pairs, "revnet", memory_efficient=memory_efficient)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(u0)
        grads.append(torch.autograd.grad(out.float().sum(), [u0, *net.parameters()]))
    for plain, reversible in zip(*grads):
        torch.testing.assert_close(reversible, plain, rtol=0.05, atol=0.05)


def test_memory_efficient_trains_with_dropout():
    """Dropout in training mode, once refused: the backward pass replays each function's
    random state (tests/test_reversible_random.py checks it against plain backprop)."""
    torch.manual_seed(0)
    pairs = [(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.3)), nn.Linear(4, 4)) for _ in range(2)]
    x = torch.randn(2, 8)
    grads = []
    for memory_efficient in (False, True):
        net = ODENet(pairs, "revnet", memory_efficient=memory_efficient)
        torch.manual_seed(1)
        grads.append(torch.autograd.grad(net(x).sum(), list(net.parameters())))
    for plain, reversible in zip(*grads):
        torch.testing.assert_close(reversible, plain)
    net.eval()
    torch.testing.assert_close(net(x), ODENet(pairs, "revnet").eval()(x))  # in eval mode dropout is the identity
