"""A user's registered schemes get every analysis from what they declare, with no name or
class known to odenets.analysis: a new explicit Runge–Kutta tableau and a new two-step
scheme with trained coefficients. Each analysis is checked against an oracle written
here from published facts: R(z) = det(I - zA + z 1 b^T) / det(I - zA) (Hairer & Wanner,
Solving ODEs II, Prop. IV.3.2), numpy's roots of rho(zeta) - z sigma(zeta), the Taylor
expansion of the step, and exact solutions of test ODEs."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from odenets import Carry, ODENet, solvers
from odenets.analysis import (
    characteristic,
    convergence,
    format_table,
    modified_equation,
    modified_multistep,
    real_interval,
    stability_region,
    stable,
    step_spectra,
    zero_stable,
)
from odenets.analysis.schemes import analysable

F64 = torch.float64

# three stages, second order: b^T 1 = 1, b^T c = 1/2, and b^T A^2 1 = 1/4 (not 1/6: not any built-in's R)
TABLEAU = solvers.ButcherTableau("nested2", 2, a=((), (0.5,), (0.0, 0.5)), b=(0.0, 0.0, 1.0), c=(0.0, 0.5, 0.5))


class LearnedTwoStep(solvers.LinearMultistep):
    """u_{n+1} = (1 - a_n) u_n + a_n u_{n-1} + dt ((1 + theta_n) f_n - theta_n f_{n-1}), a_n and
    theta_n trained: AB2 at (0, 1/2), LM-ResNet's step at theta = 0 with k = a."""

    trained = ("a", "theta")

    def __init__(self, a_init: float = 0.0, theta_init: float = 0.5):
        template = solvers.MultistepCoefficients("learned_ab2", 1, alpha=(1.0, 0.0), beta=(1.5, -0.5))
        super().__init__(template, starter=solvers.RungeKutta(solvers.HEUN))
        self.a_init, self.theta_init = a_init, theta_init

    def init_params(self, n):
        return {"a": torch.tensor(float(self.a_init)), "theta": torch.tensor(float(self.theta_init))}

    def weights(self, a, theta):
        return (1 - a, a), (1 + theta, -theta)


@pytest.fixture(autouse=True)
def registered():
    solvers.register("nested2", TABLEAU)
    solvers.register("learned_ab2", LearnedTwoStep)
    yield
    solvers.unregister("nested2")
    solvers.unregister("learned_ab2")


def R_oracle(z: complex) -> complex:
    """det(I - zA + z 1 b^T) / det(I - zA), from the tableau's numbers."""
    s = TABLEAU.stages
    A = np.zeros((s, s))
    for i, row in enumerate(TABLEAU.a):
        A[i, :i] = row
    one_b = np.outer(np.ones(s), TABLEAU.b)
    eye = np.eye(s)
    return np.linalg.det(eye - z * A + z * one_b) / np.linalg.det(eye - z * A)


def left_edge() -> float:
    """Where the tableau's interval on the real axis ends: the real root of R(x) = -1 nearest
    0 (R(x) = 1 only at x = 0 for this R)."""
    r = TABLEAU.stability_function
    return max(x.real for x in np.roots([r[3], r[2], r[1], r[0] + 1]) if abs(x.imag) < 1e-12 and x.real < 0)


def roots_oracle(z: complex, a: float, theta: float) -> np.ndarray:
    """Roots of rho(zeta) - z sigma(zeta) = zeta^2 - (1 - a) zeta - a - z ((1 + theta) zeta - theta)."""
    return np.roots([1.0, -(1 - a) - z * (1 + theta), -a + z * theta])


def linear(spectrum, seed: int = 0) -> nn.Linear:
    """f(u) = A u with the eigenvalues ``spectrum`` (real, or pairs a +- ib)."""
    blocks = [torch.tensor([[z.real]]) if z.imag == 0 else torch.tensor([[z.real, z.imag], [-z.imag, z.real]])
              for z in map(complex, spectrum)]
    d = torch.block_diag(*blocks).double()
    p = torch.randn(len(d), len(d), generator=torch.Generator().manual_seed(seed), dtype=F64)
    f = nn.Linear(len(d), len(d), bias=False).double()
    with torch.no_grad():
        f.weight.copy_(p @ d @ torch.linalg.inv(p))
    return f


# -- the Runge–Kutta tableau ----------------------------------------------------------------------

def test_tableau_is_analysable_by_name():
    assert "nested2" in analysable() and "learned_ab2" in analysable()


def test_tableau_stability_function_and_region():
    zs = np.array([-1.3 + 0.4j, 0.2 - 2j, -2.5 + 0j, 0.7j])
    got = characteristic("nested2").roots(torch.from_numpy(zs))[..., 0].numpy()
    assert np.allclose(got, [R_oracle(z) for z in zs], atol=1e-12)
    region = stability_region("nested2", re=(-3, 1), im=(-2.5, 2.5), resolution=121)
    modulus = torch.tensor([[abs(R_oracle(complex(z))) for z in row] for row in region.z])
    want, clear = modulus <= 1, (modulus - 1).abs() > 1e-6
    assert torch.equal(region.stable[clear], want[clear]) and 0 < int(want.sum()) < want.numel()
    assert real_interval("nested2")[0] == pytest.approx(left_edge(), abs=1e-8)


def test_tableau_modified_equation_is_second_order():
    """Order 2: u' + (dt/2) u'' = f + (dt/2) (d/dt) f, i.e. u' = f + O(dt^2) since u'' = (d/dt) f + O(dt)."""
    eq = modified_multistep("nested2", dt=0.1)
    assert (eq.du, eq.ddu, eq.f, eq.df) == pytest.approx((1.0, 0.05, 1.0, 0.05))


def test_tableau_spectra_verdicts():
    spectrum = (-0.5, complex(-0.6, 0.5), complex(-1.9, 0.6), -2.4, 0.1)
    f, dt = linear(spectrum), 0.9
    records = step_spectra(ODENet(f, solver="nested2", steps=2, dt=dt), torch.randn(2, f.in_features, dtype=F64))
    want = dt * np.linalg.eigvals(f.weight.detach().numpy())
    inside = np.mean([abs(R_oracle(z)) <= 1 for z in want])
    assert 0 < inside < 1
    assert [r.inside_fraction for r in records] == pytest.approx([inside, inside])
    assert records[0].region_name == "nested2"


def test_tableau_converges_at_its_order():
    result = convergence(["nested2"], steps=(16, 32, 64, 128))
    assert result.orders["nested2"] == 2 and result.slopes["nested2"] == pytest.approx(2.0, abs=0.1)


# -- the multistep scheme with trained coefficients -----------------------------------------------

def test_multistep_characteristic_roots_against_numpy():
    rng = np.random.default_rng(0)
    for a, theta in ((-0.3, 0.25), (0.4, -0.2)):
        zs = rng.normal(size=4) + 1j * rng.normal(size=4)
        got = characteristic("learned_ab2", a=a, theta=theta).roots(torch.from_numpy(zs)).numpy()
        for z, roots in zip(zs, got):
            assert np.allclose(np.sort_complex(roots), np.sort_complex(roots_oracle(z, a, theta)), atol=1e-12)
    # a trained coefficient per channel: the region is where every channel's is
    joint = stability_region("learned_ab2", a=torch.tensor([-0.3, 0.2]), theta=torch.tensor([0.25, 0.0]),
                             resolution=61)
    each = [stability_region("learned_ab2", a=a, theta=t, resolution=61).stable for a, t in ((-0.3, 0.25), (0.2, 0.0))]
    assert torch.equal(joint.stable, each[0] & each[1]) and joint.stable.any()


@pytest.mark.parametrize("a, theta", [(-0.3, 0.25), (0.0, 0.5), (0.5, 0.1)])
def test_multistep_real_interval(a, theta):
    """A real root leaves the disc through -1 at z = rho(-1) / sigma(-1) = -2 (1 - a) / (1 + 2 theta)."""
    edge = -2 * (1 - a) / (1 + 2 * theta)
    assert np.abs(roots_oracle(0.999 * edge, a, theta)).max() <= 1
    assert np.abs(roots_oracle(1.001 * edge, a, theta)).max() > 1
    assert real_interval("learned_ab2", a=a, theta=theta)[0] == pytest.approx(edge, abs=1e-7)
    assert zero_stable("learned_ab2", a=a, theta=theta)
    assert not zero_stable("learned_ab2", a=-1.2, theta=theta)  # rho's root -a outside the disc


def test_multistep_modified_equation_by_taylor_and_by_the_step():
    """Taylor: (1 + a) u' + (1 - a)(dt/2) u'' = f + theta dt (d/dt) f. On u' = lam u with exact start
    values the step's solution is O(dt^2) from e^{m t}, m the root near lam/(1 + a) of
    (1 + a) m + (1 - a)(dt/2) m^2 = lam + theta dt lam m, and only O(dt) from e^{lam t / (1 + a)}."""
    a, theta, lam, T = -0.3, 0.25, -1.0, 1.0
    eq = modified_multistep("learned_ab2", dt=0.2, a=a, theta=theta)
    assert (eq.du, eq.ddu, eq.f, eq.df) == pytest.approx((1 + a, (1 - a) * 0.1, 1.0, theta * 0.2))

    class Scale(nn.Module):
        def forward(self, u):
            return lam * u

    err_modified, err_first, dts = [], [], []
    for n in (64, 128, 256):
        dt = T / n
        eq = modified_multistep("learned_ab2", dt=dt, a=a, theta=theta)
        # eq.ddu m^2 + (eq.du - eq.df lam) m - lam = 0, the root near lam / (1 + a)
        qa, qb = eq.ddu, eq.du - eq.df * lam
        m = 2 * lam / (qb + math.sqrt(qb * qb + 4 * qa * lam))
        net = ODENet(Scale(), "learned_ab2", steps=n - 1, dt=dt, carry_in=True, a_init=a, theta_init=theta).double()
        u0 = torch.ones(1, 1, dtype=F64)
        with torch.no_grad():
            u = net.integrate(Carry(u0 * math.exp(m * dt), (solvers.Record(u0, lam * u0),))).u
        dts.append(dt)
        err_modified.append(abs(float(u) - math.exp(m * T)))
        err_first.append(abs(float(u) - math.exp(lam * T / (1 + a))))
    slope = lambda e: math.log(e[-1] / e[0]) / math.log(dts[-1] / dts[0])  # noqa: E731
    assert slope(err_modified) == pytest.approx(2.0, abs=0.15)
    assert slope(err_first) == pytest.approx(1.0, abs=0.1)


def test_multistep_network_rows_and_regions():
    net = ODENet(lambda i: nn.Linear(3, 3), "learned_ab2", steps=3, a_init=-0.5, theta_init=0.0)
    rows = modified_equation(net)
    assert [r.learned for r in rows] == [False, True, True]
    assert set(rows[1].coefficients) == {"a", "theta"}
    # at theta = 0 the step is LM's with k = a: (1 + a) u' + (1 - a)(dt/2) u'' = f
    assert float(rows[1].equation.du) == pytest.approx(0.5) and float(rows[1].equation.ddu) == pytest.approx(0.75)
    assert rows[1].regime == "momentum"
    assert "a=-0.5000" in format_table(rows)


def test_multistep_spectra_follow_each_steps_trained_coefficients():
    spectrum = (-0.5, complex(-0.6, 0.5), complex(-1.2, 0.3), -1.6, 0.1)
    f = linear(spectrum)
    net = ODENet(f, solver="learned_ab2", steps=3, dt=1.0)
    coefs = [(-0.3, 0.25), (0.4, 0.0)]
    with torch.no_grad():
        for step, (a, theta) in zip(net.layers[1:], coefs):
            step.coefs["a"].fill_(a)
            step.coefs["theta"].fill_(theta)
    records = step_spectra(net, torch.randn(1, f.in_features, dtype=F64))
    want = np.linalg.eigvals(f.weight.detach().numpy())
    heun = lambda z: abs(1 + z + z * z / 2) <= 1  # noqa: E731  the first step is the starter's
    assert records[0].inside_fraction == pytest.approx(np.mean([heun(z) for z in want]))
    fractions = [np.mean([np.abs(roots_oracle(z, a, t)).max() <= 1 + 1e-12 for z in want]) for a, t in coefs]
    assert fractions[0] != fractions[1]
    assert [r.inside_fraction for r in records[1:]] == pytest.approx(fractions)


def test_multistep_converges_to_the_ode_its_coefficients_make():
    """At constant (a, theta) the scheme solves (1 + a) u' = f: measured against u(t / (1 + a)),
    first order; at AB2's (0, 1/2) second order."""
    result = convergence(["learned_ab2"], steps=(16, 32, 64, 128), options={"learned_ab2": {"a_init": -0.3,
                                                                                     "theta_init": 0.25}})
    assert result.scales["learned_ab2"] == pytest.approx(1 / 0.7)
    assert result.slopes["learned_ab2"] == pytest.approx(1.0, abs=0.1)
    ab2 = convergence(["learned_ab2"], steps=(16, 32, 64, 128))
    assert ab2.scales["learned_ab2"] == pytest.approx(1.0) and ab2.slopes["learned_ab2"] == pytest.approx(2.0, abs=0.1)
    with pytest.raises(ValueError, match="does not converge"):
        convergence(["learned_ab2"], options={"learned_ab2": {"a_init": -1.2}})


def test_stable_takes_a_scheme_instance_too():
    scheme = LearnedTwoStep()
    z = torch.tensor([-0.5 + 0j, -1.1 + 0j])
    assert stable(scheme, z, a=0.0, theta=0.5).tolist() == [True, False]  # AB2's interval is [-1, 0]
    with pytest.raises(ValueError, match="pass theta"):
        stable(scheme, z, a=0.0)


def test_the_command_line_takes_them_by_name(capsys):
    import argparse
    import json

    from odenets.app.commands import analyze

    def run(argv):
        p = argparse.ArgumentParser(prog="odenets")
        analyze.register(p.add_subparsers(dest="command", required=True))
        args = p.parse_args(argv)
        return args.func(args)

    assert run(["analyze", "stability", "--schemes", "nested2,learned_ab2", "--resolution", "41", "--json"]) == 0
    table = {t["scheme"]: t for t in json.loads(capsys.readouterr().out)}
    assert table["nested2"]["real_interval"][0] == pytest.approx(left_edge(), abs=1e-8)
    # learned_ab2 drawn at its initial coefficients, AB2's (a, theta) = (0, 1/2): [-1, 0]
    assert table["learned_ab2(a=0, theta=0.5)"]["real_interval"][0] == pytest.approx(-1.0, abs=1e-8)
    assert run(["analyze", "convergence", "--schemes", "nested2,learned_ab2", "--steps", "16,32,64", "--json"]) == 0
    slopes = json.loads(capsys.readouterr().out)["slopes"]
    assert slopes == pytest.approx({"nested2": 2.0, "learned_ab2": 2.0}, abs=0.15)
