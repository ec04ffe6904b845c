"""Empirical order of every deterministic scheme: the error against an exact (or tight
dopri5) solution at T = 1 must fall by 2^p when the step halves.

Every net is an ODENet over one shared module with dt = T / steps, in float64.
"""
import pytest
import torch
from odes import A3, F64, Forced, Linear, Logistic, MatTanh, Scaled, Split, dopri5_reference, observed_orders

from odenets import ODENet

T = 1.0
STEPS = (20, 40, 80)
TOL = 0.2

U_LIN = torch.tensor([[1.0, -0.5, 0.25], [0.3, 0.2, -0.7]], dtype=F64)
U_SCALAR = torch.tensor([[0.1, 0.5, 0.9]], dtype=F64)  # in (0, 1), where the logistic solution lives
B_TANH = torch.tensor([[-1.0, 0.8, 0.0], [-0.6, -0.3, 0.5], [0.2, -0.9, -0.4]], dtype=F64)


def _problem(name: str):
    """(field, u0, solution at T)."""
    if name == "linear":
        f = Linear(A3)
        return f, U_LIN, f.exact(U_LIN, T)
    if name == "logistic":
        return Logistic(), U_SCALAR, Logistic.exact(U_SCALAR, T)
    if name == "forced":  # time-dependent: checks the stage times t_n + c_i dt
        return Forced(), U_SCALAR, Forced.exact(U_SCALAR, T)
    if name == "tanh":
        f = MatTanh(B_TANH)
        return f, U_LIN, dopri5_reference(f, U_LIN, T)
    raise KeyError(name)


def _orders(solver: str, f, u0, exact, **options) -> list[float]:
    errors = []
    for n in STEPS:
        net = ODENet(f, solver, steps=n, dt=T / n, **options)
        errors.append((net(u0) - exact).abs().max().item())
    return observed_orders(errors)


ONE_FUNCTION = [("euler", 1, {}), ("midpoint", 2, {}), ("heun", 2, {}), ("rk3", 3, {}), ("rk4", 4, {}),
                ("ab2", 2, {}), ("ab3", 3, {}), ("ab4", 4, {}), ("lm", 1, {"k_init": 0.0})]


@pytest.mark.parametrize("problem", ["linear", "logistic", "forced", "tanh"])
@pytest.mark.parametrize("solver,order,options", ONE_FUNCTION, ids=[s for s, _, _ in ONE_FUNCTION])
def test_order(solver, order, options, problem):
    f, u0, exact = _problem(problem)
    orders = _orders(solver, f, u0, exact, **options)
    assert all(abs(q - order) < TOL for q in orders), f"{solver} on {problem}: observed orders {orders}"


@pytest.mark.parametrize("problem", ["linear", "logistic", "tanh"])  # truncated Neumann series needs f(0) = 0
@pytest.mark.parametrize("truncation", [1, 2, 3])
def test_polynet_order(problem, truncation):
    f, u0, exact = _problem(problem)
    orders = _orders("polynet", f, u0, exact, truncation=truncation)
    assert all(abs(q - 1) < TOL for q in orders), f"polynet on {problem}: observed orders {orders}"


@pytest.mark.parametrize("problem", ["linear", "logistic", "forced", "tanh"])
def test_fractal_is_heun_at_initial_weights(problem):
    """f1 = f, f2 = f / 2 with k1 = k2 = 1/2, k3 = 1 is Heun's second-order scheme."""
    f, u0, exact = _problem(problem)
    orders = _orders("fractal", (Scaled(f, 1.0), Scaled(f, 0.5)), u0, exact)
    assert all(abs(q - 2) < TOL for q in orders), f"fractal on {problem}: observed orders {orders}"


B_SPLIT = torch.tensor([[0.0, 1.0], [-0.5, 0.2]], dtype=F64)
C_SPLIT = torch.tensor([[-1.0, 0.3], [0.1, -0.8]], dtype=F64)
U_SPLIT = torch.tensor([[1.0, -0.5, 0.25, 0.8], [0.3, 0.2, -0.7, -0.1]], dtype=F64)


def test_revnet_order_linear_split():
    """X' = B Y, Y' = C X is u' = [[0, B], [C, 0]] u, solved by the matrix exponential."""
    F, G = Linear(B_SPLIT), Linear(C_SPLIT)
    whole = Linear(torch.cat((torch.cat((torch.zeros(2, 2, dtype=F64), B_SPLIT), 1),
                              torch.cat((C_SPLIT, torch.zeros(2, 2, dtype=F64)), 1)), 0))
    orders = _orders("revnet", (F, G), U_SPLIT, whole.exact(U_SPLIT, T))
    assert all(abs(q - 1) < TOL for q in orders), f"revnet: observed orders {orders}"


def test_revnet_order_nonlinear_split():
    F, G = MatTanh(B_SPLIT), MatTanh(C_SPLIT)
    exact = dopri5_reference(Split(F, G), U_SPLIT, T)
    orders = _orders("revnet", (F, G), U_SPLIT, exact)
    assert all(abs(q - 1) < TOL for q in orders), f"revnet: observed orders {orders}"
