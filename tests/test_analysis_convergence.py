"""Empirical orders of convergence through ODENet, against the logistic equation's exact solution."""
import math

import pytest
import torch

from odenets import ODENet
from odenets.analysis import convergence, fit_order, logistic, plot_convergence
from odenets.analysis.schemes import analysable

NOMINAL = {"euler": 1, "midpoint": 2, "heun": 2, "rk3": 3, "rk4": 4, "ab2": 2, "ab3": 3, "ab4": 4, "lm": 1,
           "polynet": 1, "momentum": 1}


def test_fit_order_recovers_a_power_law():
    dts = torch.tensor([0.4, 0.2, 0.1, 0.05, 0.025], dtype=torch.float64)
    assert fit_order(dts, 3 * dts**2.5) == pytest.approx(2.5, abs=1e-12)
    # the coarse, pre-asymptotic point and a round-off floor are left out of the fit
    errors = 3 * dts**2
    errors[0] = 1.0
    errors[-1] = 1e-15
    assert fit_order(dts, errors, points=3) == pytest.approx(2.0, abs=1e-12)
    with pytest.raises(ValueError, match="two errors"):
        fit_order(dts, torch.full_like(dts, 1e-16))


def test_slopes_recover_the_nominal_orders(tmp_path):
    assert set(NOMINAL) <= set(analysable())  # every built-in deterministic one-function scheme
    result = convergence(list(NOMINAL), steps=(8, 16, 32, 64, 128),
                         options={"lm": {"k_init": -0.5}, "momentum": {"gamma": 0.5}})
    assert set(result.slopes) == set(NOMINAL)
    # lm at k = -0.5 solves (1 + k) u' = f: u(t / (1 + k)) = u(2 t)
    assert result.scales["lm"] == pytest.approx(2.0) and result.scales["rk4"] == pytest.approx(1.0)
    for name, order in NOMINAL.items():
        assert result.slopes[name] == pytest.approx(order, abs=0.2), name
        assert result.orders[name] == order
        assert (result.errors[name][1:] < result.errors[name][:-1]).all(), name
    fig = plot_convergence(result, tmp_path / "conv.png")
    assert "slope" in fig.axes[0].get_legend().get_texts()[0].get_text()
    lines = fig.axes[0].get_lines()
    assert len(NOMINAL) > 10 and len(lines) == len(NOMINAL)  # more than the ten default colors
    assert len({(str(line.get_color()), line.get_marker(), line.get_linestyle()) for line in lines}) == len(lines)
    assert (tmp_path / "conv.png").read_bytes()[:4] == b"\x89PNG"


def test_lm_converges_to_its_modified_equation_not_to_u_prime_equals_f():
    # with constant k the LM network solves (1 + k) u' = f(u): u(t / (1 + k)), not u(t)
    problem, k = logistic(), -0.5
    errs_modified, errs_plain = [], []
    for n in (32, 64, 128):
        net = ODENet(problem.f, "lm", steps=n, dt=problem.T / n, k_init=k).double().eval()
        with torch.no_grad():
            out = net(problem.u0)
        errs_modified.append(float((out - problem.exact(problem.T / (1 + k))).abs().max()))
        errs_plain.append(float((out - problem.exact(problem.T)).abs().max()))
    assert errs_modified[-1] < 0.01 and errs_modified[-1] < errs_modified[0] / 3
    assert min(errs_plain) > 0.05


def test_logistic_exact_solution_solves_the_ode():
    problem = logistic()
    t, h = 0.4, 1e-5
    derivative = (problem.exact(t + h) - problem.exact(t - h)) / (2 * h)
    u = problem.exact(t)
    assert torch.allclose(derivative, problem.f(u), atol=1e-8)
    assert torch.allclose(problem.exact(0.0), problem.u0)


def test_bad_input():
    with pytest.raises(ValueError, match="unknown or adaptive"):
        convergence(["euler", "dopri5"])
    with pytest.raises(ValueError, match="constant k"):
        convergence(["lm"], options={"lm": {"k_init": (-0.1, 0.0)}})
    with pytest.raises(ValueError, match="does not converge"):
        convergence(["lm"], options={"lm": {"k_init": -1.5}})
    with pytest.raises(ValueError, match="two positive"):
        convergence(["euler"], steps=(8,))
    assert math.isfinite(convergence(["euler"], steps=(4, 8)).slopes["euler"])
