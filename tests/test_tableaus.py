"""Schemes given as data: user tableaus and multistep coefficients reach their order
through ODENet, and every scheme makes the f-evaluations it declares; Butcher's rooted
trees and the order conditions checked against published counts and tableaus."""
from fractions import Fraction as F

import pytest
import torch
from odenets.solvers.rooted_trees import bracket, density, trees
from odes import A3, F64, Counter, Linear, Logistic, observed_orders, registered
from torch import nn

from odenets import ODENet, solvers

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


def test_rooted_tree_counts_are_oeis_a000081():
    assert [len(trees(n)) for n in range(1, 9)] == [1, 1, 2, 4, 9, 20, 48, 115]


def test_order_4_trees_and_their_densities():
    # HNW I, §II.2: the order-4 trees have gamma = 4, 8, 12, 24
    assert sorted(density(t) for t in trees(4)) == [4, 8, 12, 24]
    assert {bracket(t) for t in trees(4)} == {"[*,*,*]", "[*,[*]]", "[[*,*]]", "[[[*]]]"}


# Published tableaus of known order, written exactly (Kutta 1901; Dormand & Prince 1980; Butcher 1964).
CLASSICAL_RK4 = dict(a=((), (F(1, 2),), (0, F(1, 2)), (0, 0, 1)),
                     b=(F(1, 6), F(1, 3), F(1, 3), F(1, 6)), c=(0, F(1, 2), F(1, 2), 1))
KUTTA_3_8 = dict(a=((), (F(1, 3),), (F(-1, 3), 1), (1, -1, 1)),
                 b=(F(1, 8), F(3, 8), F(3, 8), F(1, 8)), c=(0, F(1, 3), F(2, 3), 1))
DOPRI5 = dict(  # Dormand & Prince (1980), its 5th-order weights
    a=((), (F(1, 5),), (F(3, 40), F(9, 40)), (F(44, 45), F(-56, 15), F(32, 9)),
       (F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)),
       (F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)),
       (F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84))),
    b=(F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), 0),
    c=(0, F(1, 5), F(3, 10), F(4, 5), F(8, 9), 1, 1))
BUTCHER6 = dict(  # Butcher (1964): 7 stages, order 6
    a=((), (F(1, 3),), (0, F(2, 3)), (F(1, 12), F(1, 3), F(-1, 12)),
       (F(-1, 16), F(9, 8), F(-3, 16), F(-3, 8)), (0, F(9, 8), F(-3, 8), F(-3, 4), F(1, 2)),
       (F(9, 44), F(-9, 11), F(63, 44), F(18, 11), 0, F(-16, 11))),
    b=(F(11, 120), 0, F(27, 40), F(27, 40), F(-4, 15), F(-4, 15), F(11, 120)),
    c=(0, F(1, 3), F(2, 3), F(1, 3), F(1, 2), F(1, 2), 1))
PUBLISHED = [("rk4", 4, CLASSICAL_RK4), ("rk38", 4, KUTTA_3_8), ("dopri5", 5, DOPRI5), ("butcher6", 6, BUTCHER6)]


@pytest.mark.parametrize("name,order,tableau", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_published_tableau_has_its_order_and_no_more(name, order, tableau):
    exact = solvers.ButcherTableau(name, order, **tableau)  # Fractions: checked exactly
    floats = dict(a=exact.a, b=exact.b, c=exact.c)  # kept as floats: checked to within 1e-12
    assert solvers.ButcherTableau(name, order, **floats) == exact
    for entries in (tableau, floats):
        with pytest.raises(ValueError, match=f"claims order {order + 1} but fails an order-{order + 1} condition"):
            solvers.ButcherTableau(name, order + 1, **entries)


def test_a_failed_condition_names_its_order_and_tree():
    # Simpson weights make the quadrature conditions of order 3 hold; with a_32 = 0 the
    # remaining one, sum b_i a_ij c_j = 1/6 for the tree [[*]], does not.
    with pytest.raises(ValueError, match=r"claims order 3 but fails an order-3 condition, that of the tree "
                                         r"\[\[\*\]\]: sum_i b_i Phi_i = 0 != 1/gamma = 1/6"):
        solvers.ButcherTableau("bad", 3, a=((), (F(1, 2),), (1, 0)), b=(F(1, 6), F(2, 3), F(1, 6)),
                               c=(0, F(1, 2), 1))


def test_fractions_are_kept_as_floats():
    tableau = solvers.ButcherTableau("rk4", 4, **CLASSICAL_RK4)
    assert tableau == solvers.RK4 and all(type(x) is float for x in tableau.b + tableau.c + tableau.a[1])


@pytest.mark.parametrize("name,order", [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk3", 3), ("rk4", 4)])
def test_built_in_tableaus_still_construct(name, order):
    tableau = solvers.get(name).tableau
    assert tableau.order == order
    assert solvers.ButcherTableau(name, order, a=tableau.a, b=tableau.b, c=tableau.c) == tableau


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
