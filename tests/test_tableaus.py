"""Schemes given as data: user tableaus and multistep coefficients reach their order
through ODENet, and every scheme makes the f-evaluations it declares."""
import pytest
import torch
from torch import nn

import solvers
from odenets import ODENet
from odes import A3, F64, Counter, Linear, Logistic, observed_orders, registered

RALSTON = solvers.ButcherTableau("test_ralston", 2, a=((), (2 / 3,)), b=(1 / 4, 3 / 4), c=(0.0, 2 / 3))
# The explicit midpoint (leapfrog) rule u_{n+1} = u_{n-1} + 2 dt f_n: reads a past state, no past f.
LEAPFROG = solvers.MultistepCoefficients("test_leapfrog", 2, alpha=(0.0, 1.0), beta=(2.0, 0.0))



@pytest.fixture(scope="module", autouse=True)
def user_schemes():
    leapfrog = lambda: solvers.LinearMultistep(LEAPFROG, starter=solvers.RungeKutta(solvers.MIDPOINT))  # noqa: E731
    with registered({"test_ralston": RALSTON, "test_leapfrog": leapfrog}):
        yield


def _orders(solver, f, u0, exact, T=1.0, steps=(20, 40, 80)):
    errors = [(ODENet(f, solver, steps=n, dt=T / n)(u0) - exact).abs().max().item() for n in steps]
    return observed_orders(errors)


U0 = torch.tensor([[1.0, -0.5, 0.25]], dtype=F64)
U_SCALAR = torch.tensor([[0.1, 0.5, 0.9]], dtype=F64)


@pytest.mark.parametrize("solver", ["test_ralston", "test_leapfrog"])
def test_user_scheme_reaches_its_order(solver):
    lin = Linear(A3)
    for f, u0, exact in ((lin, U0, lin.exact(U0, 1.0)), (Logistic(), U_SCALAR, Logistic.exact(U_SCALAR, 1.0))):
        orders = _orders(solver, f, u0, exact)
        assert all(abs(q - 2) < 0.2 for q in orders), f"{solver}: observed orders {orders}"


def test_user_scheme_is_listed_and_declares_itself():
    assert {"test_ralston", "test_leapfrog"} <= set(solvers.available())
    scheme = solvers.get("test_leapfrog")
    assert (scheme.order, scheme.history) == (2, 1)
    assert (solvers.get("test_ralston").order, solvers.get("test_ralston").evals) == (2, 2)


def test_register_refuses_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):
        solvers.register("rk4", RALSTON)
    with pytest.raises(ValueError, match="already registered"):
        solvers.register("dopri5", RALSTON)


def test_multistep_starter_must_be_one_step():
    with pytest.raises(ValueError, match="must be a one-step scheme"):
        solvers.LinearMultistep(solvers.AB3, starter=solvers.get("ab2"))


def test_tableau_must_be_explicit_and_consistent():
    with pytest.raises(ValueError, match="strictly lower-triangular"):
        solvers.ButcherTableau("bad", 1, a=((), (0.5, 0.5)), b=(0.5, 0.5), c=(0.0, 1.0))
    with pytest.raises(ValueError, match=r"c\[1\]"):
        solvers.ButcherTableau("bad", 1, a=((), (0.5,)), b=(0.5, 0.5), c=(0.0, 1.0))
    with pytest.raises(ValueError, match="same number of stages"):
        solvers.ButcherTableau("bad", 1, a=((),), b=(0.5, 0.5), c=(0.0, 1.0))



ONE_FUNCTION = ["euler", "midpoint", "heun", "rk3", "rk4", "lm", "polynet", "ab2", "ab3", "ab4"]


@pytest.mark.parametrize("solver", ONE_FUNCTION)
def test_declared_evaluations_per_step(solver):
    """After the starting steps, each step calls f ``evals`` times."""
    scheme = solvers.get(solver)
    u0 = torch.ones(2, 3)
    calls = []
    for steps in (6, 7):
        f = Counter()
        ODENet(f, solver, steps=steps, dt=0.1)(u0)
        calls.append(f.calls)
    assert calls[1] - calls[0] == scheme.evals


@pytest.mark.parametrize("solver", ["fractal", "revnet"])
def test_pair_schemes_call_each_function_once_per_step(solver):
    F, G = Counter(), Counter()
    ODENet((F, G), solver, steps=5, dt=0.1)(torch.ones(2, 4))
    assert (F.calls, G.calls, solvers.get(solver).evals) == (5, 5, 2)


def test_polynet_truncation_sets_evaluations():
    f = Counter()
    ODENet(f, "polynet", steps=4, truncation=3, dt=0.1)(torch.ones(1, 2))
    assert f.calls == 12 == 4 * solvers.get("polynet", truncation=3).evals


def test_registered_coefficients_get_a_starter_of_their_order():
    with registered({"test_ab2_as_data": solvers.MultistepCoefficients("x", 2, alpha=(1.0, 0.0),
                                                                       beta=(1.5, -0.5))}):
        scheme = solvers.get("test_ab2_as_data")
        assert isinstance(scheme, solvers.LinearMultistep) and scheme.starter.order == 2


def test_register_and_get_refuse_bad_input():
    with pytest.raises(TypeError, match="register takes a factory"):
        solvers.register("test_not_a_scheme", 42)
    with pytest.raises(ValueError, match="solver 'euler_maruyama' needs option\\(s\\) diffusion"):
        solvers.get("euler_maruyama")


class _LearnedBeta(solvers.LinearMultistep):
    """u_{n+1} = u_n + dt b f_n(u_n) with one learned b per channel."""

    def __init__(self):
        super().__init__(solvers.MultistepCoefficients("test_beta", 1, alpha=(1.0,), beta=(1.0,)),
                         starter=solvers.RungeKutta(solvers.EULER))

    def init_params(self, n):
        return {"b": torch.tensor([1.0, 2.0, 3.0])}

    def weights(self, b):
        return (1.0,), (b,)


def test_a_learned_beta_is_per_channel():
    with registered({"test_beta": _LearnedBeta}):
        net = ODENet([nn.Identity()], "test_beta", dt=0.5)
        u0 = torch.ones(2, 3, 4)  # channels are dim 1, not the last dim
        want = u0 + 0.5 * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1) * u0
        torch.testing.assert_close(net(u0), want)


def test_unregister_frees_a_name_and_refuses_unknown_ones():
    solvers.register("test_ralston_again", RALSTON)
    net = ODENet(nn.Linear(2, 2), "test_ralston_again", steps=2)
    solvers.unregister("test_ralston_again")
    assert "test_ralston_again" not in solvers.available()
    assert net.scheme.order == 2  # a built network keeps its scheme
    with pytest.raises(ValueError, match="unknown solver|not registered|unknown scheme"):
        ODENet(nn.Linear(2, 2), "test_ralston_again", steps=2)
    solvers.register("test_ralston_again", RALSTON)  # the name is free again
    solvers.unregister("test_ralston_again")
    with pytest.raises(ValueError, match="no scheme named 'test_ralston_again' is registered"):
        solvers.unregister("test_ralston_again")
    with pytest.raises(ValueError, match="adaptive"):
        solvers.unregister("dopri5")
