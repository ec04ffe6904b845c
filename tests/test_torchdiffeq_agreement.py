"""ODENet agrees with torchdiffeq's fixed-grid solvers where both run the same scheme.

torchdiffeq's 'euler', 'midpoint' and 'heun2' are our 'euler', 'midpoint' and 'heun';
its 'rk4' is Kutta's 3/8 rule and its 'heun3' Heun's third-order scheme, which we give
as user tableaus (our 'rk4' is the classic scheme and differs from theirs at O(dt^5)).
"""
import pytest
import torch
import torchdiffeq
from odes import registered
from torch import nn

from odenets import ODENet, solvers

RK4_38 = solvers.ButcherTableau("test_rk4_38", 4, a=((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
                                b=(1 / 8, 3 / 8, 3 / 8, 1 / 8), c=(0.0, 1 / 3, 2 / 3, 1.0))
HEUN3 = solvers.ButcherTableau("test_heun3", 3, a=((), (1 / 3,), (0.0, 2 / 3)),
                               b=(1 / 4, 0.0, 3 / 4), c=(0.0, 1 / 3, 2 / 3))


@pytest.fixture(scope="module", autouse=True)
def user_tableaus():
    with registered({RK4_38.name: RK4_38, HEUN3.name: HEUN3}):
        yield


PAIRS = [("euler", "euler"), ("midpoint", "midpoint"), ("heun", "heun2"),
         ("test_rk4_38", "rk4"), ("test_heun3", "heun3")]


class TimeMLP(nn.Module):
    """A nonlinear, time-dependent field f(t, u) = W2 tanh(W1 u + t b) + cos(3t)."""

    def __init__(self, d: int, hidden: int = 16):
        super().__init__()
        self.l1, self.l2 = nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.b = nn.Parameter(torch.randn(hidden))

    def forward(self, t, u):
        t = torch.as_tensor(t, dtype=u.dtype, device=u.device)
        return self.l2(torch.tanh(self.l1(u) + t * self.b)) + torch.cos(3 * t)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_trajectory_matches_torchdiffeq(ours, theirs, dtype, tol):
    torch.manual_seed(0)
    f = TimeMLP(4).to(dtype)
    u0 = torch.randn(5, 4, dtype=dtype)
    steps, dt, t0 = 12, 0.15, 0.3
    net = ODENet(f, ours, steps=steps, dt=dt, t0=t0, return_trajectory=True)
    grid = t0 + dt * torch.arange(steps + 1, dtype=dtype)
    want = torchdiffeq.odeint(f, u0, grid, method=theirs)
    got = net(u0)
    assert got.shape == want.shape == (steps + 1, 5, 4)
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_gradients_match_torchdiffeq(ours, theirs):
    torch.manual_seed(1)
    f = TimeMLP(3).double()
    u0 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    steps, dt = 6, 0.2
    grid = dt * torch.arange(steps + 1, dtype=torch.float64)
    grads = []
    for run in (lambda: ODENet(f, ours, steps=steps, dt=dt)(u0),
                lambda: torchdiffeq.odeint(f, u0, grid, method=theirs)[-1]):
        loss = run().pow(2).sum()
        grads.append(torch.autograd.grad(loss, [u0, *f.parameters()]))
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-12)


def test_classic_rk4_is_one_hand_written_step():
    """torchdiffeq has no classic RK4 method, so our 'rk4' is checked against the
    textbook formulas on a nonlinear, time-dependent field."""
    class Field(nn.Module):
        def forward(self, t, u):
            return u * u + t

    u0, t0, dt = torch.tensor([[0.5, -0.3]], dtype=torch.float64), 0.2, 0.1
    f = Field()
    k1 = f(t0, u0)
    k2 = f(t0 + dt / 2, u0 + dt / 2 * k1)
    k3 = f(t0 + dt / 2, u0 + dt / 2 * k2)
    k4 = f(t0 + dt, u0 + dt * k3)
    want = u0 + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    torch.testing.assert_close(ODENet(f, "rk4", steps=1, dt=dt, t0=t0)(u0), want, rtol=1e-15, atol=1e-15)
