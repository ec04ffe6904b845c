"""Stochastic schemes and noise: Euler–Maruyama against closed-form SDE moments,
stochastic depth and shake-shake against their expectations.

The batch holds independent samples; bounds are a few standard errors estimated from the
same samples, with seeds fixed so that a run is reproducible. Tensors stay under 32768
elements, below torch's intra-op parallel grain, which on a busy shared CPU is slow.
"""
import copy
import math

import pytest
import torch
from torch import Tensor, nn

from odenets import ODENet, solvers

F64 = torch.float64
SAMPLES = 10_000
Z = 5.0  # standard errors allowed


def _mean_bound(x: Tensor) -> Tensor:
    return Z * x.std(0) / math.sqrt(x.shape[0])


def _var_bound(x: Tensor) -> Tensor:
    """Z standard errors of the sample variance, from the sample's fourth moment."""
    c = x - x.mean(0)
    return Z * torch.sqrt(((c ** 4).mean(0) - c.pow(2).mean(0) ** 2) / x.shape[0])


class Drift(nn.Module):
    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, u):
        return self.rate * u


def _moments_match(u: Tensor, mean: float, var: float) -> None:
    assert (u.mean(0) - mean).abs().max() < _mean_bound(u).max(), (u.mean(0), mean)
    assert (u.var(0) - var).abs().max() < _var_bound(u).max(), (u.var(0), var)


# -- Euler–Maruyama --------------------------------------------------------------------

THETA, SIGMA, X0, T, N = 1.5, 0.8, 2.0, 1.0, 200


def _ou_moments() -> tuple[float, float]:
    """du = -theta u dt + sigma dW from x0: the mean and variance at T."""
    return X0 * math.exp(-THETA * T), SIGMA ** 2 / (2 * THETA) * (1 - math.exp(-2 * THETA * T))


def test_ornstein_uhlenbeck_moments():
    torch.manual_seed(0)
    net = ODENet(Drift(-THETA), "euler_maruyama", steps=N, dt=T / N, diffusion=SIGMA).train()
    u = net(torch.full((SAMPLES, 1), X0, dtype=F64))
    _moments_match(u, *_ou_moments())


def test_learned_diffusion_module_is_trained_and_used():
    """g = nn.Linear(1, 1) with weight 0, bias sigma is additive noise sigma: the OU law again;
    the module is a submodule of the net, so it moves with it and its gradient is computed."""
    torch.manual_seed(1)
    g = nn.Linear(1, 1).double()
    with torch.no_grad():
        g.weight.zero_()
        g.bias.fill_(SIGMA)
    net = ODENet(Drift(-THETA), "euler_maruyama", steps=N, dt=T / N, diffusion=g).train()
    assert any(p is g.weight for p in net.parameters()) and "diffusion.bias" in net.state_dict()
    u = net(torch.full((SAMPLES, 1), X0, dtype=F64))
    _moments_match(u, *_ou_moments())
    u.pow(2).mean().backward()
    assert g.bias.grad is not None and g.bias.grad.abs() > 0 and g.weight.grad.abs() > 0


def test_a_copied_net_uses_its_own_diffusion():
    """copy.deepcopy (EMA weights, ablation copies) must give a net whose noise comes from
    the copy's diffusion module, not the original's."""
    g = nn.Linear(1, 1).double()
    net = ODENet(Drift(-THETA), "euler_maruyama", steps=3, dt=0.1, diffusion=g).train()
    twin = copy.deepcopy(net)
    with torch.no_grad():
        twin.diffusion.weight.zero_()
        twin.diffusion.bias.zero_()  # the copy has no noise at all
    u0 = torch.ones(4, 1, dtype=F64)
    torch.testing.assert_close(twin(u0), u0 * (1 - 0.1 * THETA) ** 3, rtol=1e-14, atol=1e-14)


def test_geometric_brownian_motion_is_ito():
    """du = mu u dt + s u dW (noise g(u) = s u read at u_n): E u_T = u0 e^{mu T},
    Var u_T = u0^2 e^{2 mu T} (e^{s^2 T} - 1). A Stratonovich reading would shift the mean."""
    torch.manual_seed(2)
    mu, s, steps = 0.3, 0.5, 400
    g = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        g.weight.fill_(s)
    net = ODENet(Drift(mu), "euler_maruyama", steps=steps, dt=T / steps, diffusion=g).train()
    u = net(torch.ones(SAMPLES, 1, dtype=F64))
    _moments_match(u, math.exp(mu * T), math.exp(2 * mu * T) * (math.exp(s * s * T) - 1))


def test_euler_maruyama_eval_is_the_drift_path():
    torch.manual_seed(0)
    f = nn.Sequential(nn.Linear(3, 3), nn.Tanh()).double()
    net = ODENet(f, "euler_maruyama", steps=5, dt=0.2, diffusion=0.7).eval()
    u0 = torch.randn(4, 3, dtype=F64)
    with torch.no_grad():
        u = u0
        for _ in range(5):
            u = u + 0.2 * f(u)
        torch.testing.assert_close(net(u0), u, rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(net(u0), net(u0), rtol=0, atol=0)
        assert (net.train()(u0) - u).abs().max() > 1e-3  # training mode does draw noise


# -- stochastic depth ----------------------------------------------------------------

def test_survival_probabilities_decay_linearly():
    L, last = 8, 0.3
    ps = solvers.survival_probabilities(L, last)
    assert ps == pytest.approx([1 - (n + 1) / L * (1 - last) for n in range(L)], abs=1e-15)
    assert ps[-1] == pytest.approx(last)


class Unit(nn.Module):
    """f_n(u) = e_n, whatever u: step n's coordinate counts whether it survived."""

    def __init__(self, n: int, d: int):
        super().__init__()
        self.register_buffer("e", torch.eye(d, dtype=F64)[n])

    def forward(self, u):
        return self.e.expand_as(u)


def test_each_step_survives_with_its_probability():
    torch.manual_seed(0)
    L, last = 6, 0.4
    net = ODENet([Unit(n, L) for n in range(L)], "euler", noise="stochastic_depth", survival=last).train()
    samples = SAMPLES // 2
    kept = net(torch.zeros(samples, L, dtype=F64))
    assert set(kept.unique().tolist()) <= {0.0, 1.0}
    want = torch.tensor([1 - (n + 1) / L * (1 - last) for n in range(L)], dtype=F64)
    bound = Z * torch.sqrt(want * (1 - want) / samples) + 1e-12
    assert ((kept.mean(0) - want).abs() <= bound).all(), (kept.mean(0), want)


def _linear_blocks(L: int, d: int):
    torch.manual_seed(0)
    return [nn.Linear(d, d, bias=False).double() for _ in range(L)]


def _eval_by_hand(solver: str, blocks, ps, k, u0: Tensor) -> Tensor:
    """The expectation of the training output for linear f_n: each step's residual term
    is kept with probability p_n, independently across steps."""
    prev, u = None, u0
    for n, (W, p) in enumerate(zip(blocks, ps)):
        if solver == "euler":
            nxt = u + p * W(u)
        elif solver == "lm":
            nxt = u + p * W(u) if prev is None else (1 - k[n]) * u + k[n] * prev + p * W(u)
        else:  # midpoint: u + b W(u + W(u)/2), b in {0, 1}, has mean u + p (W u + W W u / 2)
            nxt = u + p * W(u + 0.5 * W(u))
        prev, u = u, nxt
    return u


@pytest.mark.parametrize("solver", ["euler", "lm", "midpoint"])
def test_stochastic_depth_eval_is_the_training_mean(solver):
    L, d, last = 4, 3, 0.5
    blocks = _linear_blocks(L, d)
    net = ODENet(blocks, solver, noise="stochastic_depth", survival=last).double()
    ps = [1 - (n + 1) / L * (1 - last) for n in range(L)]
    k = [c["k"].detach() if "k" in c else None for c in net.coefs] if solver == "lm" else None
    u0 = torch.tensor([[1.0, -2.0, 0.5]], dtype=F64)
    with torch.no_grad():
        want = _eval_by_hand(solver, blocks, ps, k, u0)
        torch.testing.assert_close(net.eval()(u0), want, rtol=1e-13, atol=1e-13)
        torch.manual_seed(3)
        samples = net.train()(u0.expand(SAMPLES, d))
    assert samples.std(0).min() > 0.01  # the noise is drawn per sample
    assert ((samples.mean(0) - want[0]).abs() < _mean_bound(samples)).all(), (samples.mean(0), want)


# -- shake-shake --------------------------------------------------------------------

class Branch(nn.Module):
    """A linear branch that keeps its last output (with its gradient) for inspection."""

    def __init__(self, d: int):
        super().__init__()
        self.lin = nn.Linear(d, d).double()

    def forward(self, u):
        self.out = self.lin(u)
        if self.out.requires_grad:
            self.out.retain_grad()
        return self.out


def test_shake_shake_eval_is_the_branch_average():
    torch.manual_seed(0)
    pairs = [(Branch(3), Branch(3)) for _ in range(3)]
    net = ODENet(pairs, "euler", noise="shake_shake", dt=0.5).eval()
    u0 = torch.randn(4, 3, dtype=F64)
    with torch.no_grad():
        u = u0
        for fa, fb in pairs:
            u = u + 0.5 * 0.5 * (fa(u) + fb(u))
        torch.testing.assert_close(net(u0), u, rtol=1e-14, atol=1e-14)


def test_shake_shake_training_mixes_per_sample_and_backward_uses_an_independent_eta():
    torch.manual_seed(0)
    fa, fb = Branch(3), Branch(3)
    net = ODENet([(fa, fb)], "euler", noise="shake_shake").train()
    u0 = torch.randn(256, 3, dtype=F64, requires_grad=True)
    out = net(u0)
    a, b = fa.out.detach(), fb.out.detach()
    # one Euler step: u + eta a + (1 - eta) b lies between u + a and u + b, eta per sample
    eta = (out.detach() - u0.detach() - b) / (a - b)
    assert ((eta >= 0) & (eta <= 1)).all()
    torch.testing.assert_close(eta, eta[:, :1].expand_as(eta), rtol=1e-8, atol=1e-8)
    assert eta[:, 0].std() > 0.2  # ~ U(0, 1): std 0.29
    out.sum().backward()
    grad_eta = fa.out.grad
    torch.testing.assert_close(fa.out.grad + fb.out.grad, torch.ones_like(a))
    assert ((grad_eta >= 0) & (grad_eta <= 1)).all()
    assert (grad_eta[:, 0] - eta[:, 0]).abs().mean() > 0.1  # independent: E|U - V| = 1/3
