"""Adaptive solvers, delegated to torchdiffeq over [t0, t0 + steps * dt]."""
import pytest
import torch
import torchdiffeq
from odes import A3, F64, Forced, Linear
from torch import nn

from odenets import ODENet, solvers

U0 = torch.tensor([[1.0, -0.5, 0.25], [0.3, 0.2, -0.7]], dtype=F64)


TOLERANCES = {"dopri5": (1e-10, 1e-8), "dopri8": (1e-10, 1e-7), "bosh3": (1e-8, 1e-5),
              "fehlberg2": (1e-6, 1e-3), "adaptive_heun": (1e-6, 1e-4)}  # (rtol asked, error allowed)


def test_every_adaptive_method_is_tested():
    assert set(TOLERANCES) == set(solvers.ADAPTIVE)


@pytest.mark.parametrize("method", sorted(TOLERANCES))
def test_linear_system_to_tolerance(method):
    """steps=1, dt=T integrates to T = 2, where exp(2 A) u0 is the solution."""
    rtol, allowed = TOLERANCES[method]
    f = Linear(A3)
    net = ODENet(f, method, steps=1, dt=2.0, rtol=rtol, atol=rtol / 100)
    assert (net(U0) - f.exact(U0, 2.0)).abs().max() < allowed


def test_dopri5_is_torchdiffeq_odeint():
    torch.manual_seed(0)
    f = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    net = ODENet(f, "dopri5", steps=1, dt=1.5, rtol=1e-6, atol=1e-8)
    want = torchdiffeq.odeint(lambda t, u: f(u), U0, torch.tensor([0.0, 1.5], dtype=F64), method="dopri5",
                              rtol=1e-6, atol=1e-8)[-1]
    torch.testing.assert_close(net(U0), want, rtol=1e-14, atol=1e-14)


def test_trajectory_at_each_t_n_with_time_dependent_f():
    """steps=4, dt=0.5: the states at t_n = n dt, n = 0..4, of u' = -u + cos t."""
    u0 = torch.tensor([[0.1, 0.5, 0.9]], dtype=F64)
    out = ODENet(Forced(), "dopri5", steps=4, dt=0.5, return_trajectory=True, rtol=1e-10, atol=1e-12)(u0)
    assert out.shape == (5, 1, 3)
    want = torch.stack([Forced.exact(u0, 0.5 * n) for n in range(5)])
    torch.testing.assert_close(out, want, rtol=1e-8, atol=1e-9)


def test_t0_shifts_the_interval():
    """From t0 = 1 the forced problem's solution is the one through u(1) = u0."""
    u0 = torch.tensor([[0.3]], dtype=F64)
    mid = Forced.exact(u0, 1.0)
    out = ODENet(Forced(), "dopri5", steps=2, dt=0.5, t0=1.0, rtol=1e-10, atol=1e-12)(mid)
    torch.testing.assert_close(out, Forced.exact(u0, 2.0), rtol=1e-8, atol=1e-9)


def test_adjoint_gradients_equal_backprop():
    torch.manual_seed(0)
    f = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    grads = []
    for adjoint in (False, True):
        u0 = U0.clone().requires_grad_(True)
        net = ODENet(f, "dopri5", steps=1, dt=1.0, adjoint=adjoint, rtol=1e-10, atol=1e-12)
        net(u0).pow(2).sum().backward()
        grads.append([u0.grad] + [p.grad.clone() for p in f.parameters()])
        f.zero_grad()
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
