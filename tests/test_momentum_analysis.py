"""The momentum scheme in the analysis: its stability region from its coefficients, its
modified equation (a damped second-order ODE) and its order of convergence."""
import cmath

import pytest
import torch
from odenets.solvers import AB2, Momentum
from torch import nn

from odenets import ODENet, solvers
from odenets.analysis import (
    convergence,
    fit_order,
    modified_multistep,
    real_interval,
    stability_region,
    stable,
    step_spectra,
    zero_stable,
)

F64 = torch.float64


@pytest.mark.parametrize("gamma", [0.3, 0.5, 0.9])
def test_real_stability_interval(gamma):
    """rho - z sigma = zeta^2 - (1 + gamma + z (1 - gamma)) zeta + gamma has the root zeta = -1
    at z = -2 (1 + gamma) / (1 - gamma), where the interval [z, 0] ends."""
    lo, hi = real_interval("momentum", gamma=gamma)
    assert hi == 0.0 and lo == pytest.approx(-2 * (1 + gamma) / (1 - gamma), abs=1e-8)
    assert zero_stable("momentum", gamma=gamma)


def test_region_comes_from_the_coefficients():
    """A Momentum instance (no name involved) has LM's region at k = -gamma with z scaled by
    1 - gamma: its step is LM's with f scaled by 1 - gamma."""
    gamma = 0.6
    region = stability_region(Momentum(gamma=gamma), re=(-10.0, 1.0), im=(-4.0, 4.0), resolution=121)
    assert region.stable.any() and not region.stable.all()
    torch.testing.assert_close(stable("lm", region.z * (1 - gamma), k=-gamma), region.stable)


def test_modified_equation_coefficients():
    """Momentum: (1 - gamma) u' + (1 + gamma)(dt/2) u'' = (1 - gamma) f(u); LM's agrees with
    the LM-network analysis; AB2's is u' + (dt/2) u'' = f + (dt/2) (d/dt) f, i.e. u' = f + O(dt^2)."""
    eq = modified_multistep("momentum", dt=0.2, gamma=0.75)
    assert (eq.du, eq.ddu, eq.f, eq.df) == pytest.approx((0.25, 1.75 * 0.1, 0.25, 0.0))
    assert eq.epsilon == pytest.approx(1.75 * 0.2 / (2 * 0.25))
    assert modified_multistep(Momentum(gamma=0.75), dt=0.2).ddu == pytest.approx(eq.ddu)
    k = torch.tensor([-0.9, -0.3, 0.4], dtype=F64)
    lm = modified_multistep("lm", dt=0.5, k=k)  # (1 + k) u' + (1 - k)(dt/2) u'' = f(u), per channel
    torch.testing.assert_close(lm.du, 1 + k)
    torch.testing.assert_close(lm.ddu, (1 - k) * 0.5 / 2)
    ab2 = modified_multistep(AB2, dt=0.1)
    assert (ab2.du, ab2.ddu, ab2.f, ab2.df) == pytest.approx((1.0, 0.05, 1.0, 0.05))
    with pytest.raises(TypeError, match="linear multistep"):
        modified_multistep(object())
    with pytest.raises(ValueError, match="no step parameters"):
        modified_multistep(AB2, k=0.5)
    with pytest.raises(ValueError, match="dt must be a positive number"):
        modified_multistep("momentum", dt=0)


def growth_per_step(dt: float, lam: float, gamma: float) -> float:
    """x_{n+1} / x_n of the momentum ODENet on x' = lam x once the parasitic mode gamma^n has
    died out: the principal root of the step."""
    f = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        f.weight.fill_(lam)
        states = ODENet(f, "momentum", steps=80, dt=dt, gamma=gamma, return_trajectory=True)(
            torch.ones(1, 1, dtype=F64))
    return float(states[-1] / states[-2])


def test_modified_equation_against_the_exact_solution():
    """On x' = lam x the step multiplies x by its principal root zeta(dt). Against the exact
    solution's exp(lam dt) the error is O(dt^2) (a first-order scheme); against the slow mode
    exp(m dt) of the modified equation eps x'' + x' = lam x, eps m^2 + m = lam, it is O(dt^3)."""
    lam, gamma = -1.0, 0.5
    dts = torch.tensor([0.05, 0.025, 0.0125, 0.00625], dtype=F64)  # real roots: dt < 0.17 here
    to_ode, to_modified = [], []
    for dt in dts.tolist():
        zeta = growth_per_step(dt, lam, gamma)
        eps = modified_multistep("momentum", dt=dt, gamma=gamma).epsilon
        slow = ((-1 + cmath.sqrt(1 + 4 * eps * lam)) / (2 * eps)).real
        to_ode.append(abs(zeta - cmath.exp(lam * dt).real))
        to_modified.append(abs(zeta - cmath.exp(slow * dt).real))
    assert fit_order(dts, torch.tensor(to_ode, dtype=F64)) == pytest.approx(2.0, abs=0.1)
    assert fit_order(dts, torch.tensor(to_modified, dtype=F64)) == pytest.approx(3.0, abs=0.15)


def test_first_order_convergence():
    """At a fixed gamma the scheme converges to the solution of u' = f(u), at order 1."""
    result = convergence(["momentum"], options={"momentum": {"gamma": 0.5}}, steps=(16, 32, 64, 128))
    assert result.orders["momentum"] == 1
    assert result.slopes["momentum"] == pytest.approx(1.0, abs=0.1)


def test_the_first_step_is_judged_by_its_own_region():
    """Without a history the first step is x_0 + dt (1 - gamma) f(x_0), forward Euler on
    (1 - gamma) f: stable on [-20, 0] at gamma 0.9, where Euler's disc ends at -2. A step
    with J = -12 I is inside it, as inside the later steps' region [-38, 0]."""
    first = solvers.get("momentum", gamma=0.9).with_history(0)
    assert real_interval(first) == pytest.approx((-20.0, 0.0), abs=1e-6)
    net = ODENet([nn.Linear(4, 4) for _ in range(3)], "momentum", gamma=0.9)
    with torch.no_grad():
        for f in net.fns:
            f.weight.copy_(-12 * torch.eye(4))
            f.bias.zero_()
    records = step_spectra(net, torch.randn(2, 4))
    assert [r.region_name for r in records] == ["momentum start(gamma=0.9)", "momentum", "momentum"]
    assert [r.inside_fraction for r in records] == [1.0, 1.0, 1.0]
    assert records[0].radius == pytest.approx(12.0)
