"""Every bad input gets a clear error, raised before any work, that says what was wrong."""
import numpy as np
import pytest
import torch
from odes import Counter
from torch import nn

from odenets import ODENet, solvers


class Narrow(nn.Module):
    """Returns 3 features whatever it gets."""

    def forward(self, u):
        return u[..., :3]


def test_unknown_solver_lists_the_known_names():
    with pytest.raises(ValueError, match="unknown solver 'rk5'") as err:
        ODENet(Counter(), "rk5", steps=2)
    for name in solvers.available():
        assert name in str(err.value)
    assert {"euler", "lm", "revnet", "dopri5"} <= set(solvers.available())


def test_solver_must_be_a_name():
    with pytest.raises(TypeError, match="solver must be a name"):
        ODENet(Counter(), solvers.get("euler"), steps=2)


@pytest.mark.parametrize("steps", [0, -3])
def test_steps_must_be_a_positive_integer(steps):
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1, got"):
        ODENet(Counter(), "euler", steps=steps)


@pytest.mark.parametrize("steps", [2.5, True, "3"])
def test_steps_of_another_type_is_a_type_error(steps):
    with pytest.raises(TypeError, match=r"steps must be an integer, got"):
        ODENet(Counter(), "euler", steps=steps)


@pytest.mark.parametrize("dt", [0.0, -0.1, float("nan"), float("inf"), np.float32(-1), torch.tensor(0.0)])
def test_dt_must_be_positive(dt):
    with pytest.raises(ValueError, match="dt must be a positive finite number"):
        ODENet(Counter(), "euler", steps=2, dt=dt)


def test_list_length_must_agree_with_steps():
    with pytest.raises(ValueError, match="steps=3 but f holds 2 per-step modules"):
        ODENet([Counter(), Counter()], "euler", steps=3)


@pytest.mark.parametrize("f,match", [
    (Counter(), "needs steps=n"),  # one shared module
    (lambda i: Counter(), "factory .* needs steps=n"),
    ([], "empty sequence"),
    ("euler", "f must be an nn.Module"),
])
def test_f_forms_that_cannot_be_unrolled(f, match):
    with pytest.raises((TypeError, ValueError), match=match):
        ODENet(f, "euler")


@pytest.mark.parametrize("shape", [(2, 5), (6,)])
def test_revnet_needs_an_even_dim_1(shape):
    F, G = Counter(), Counter()
    net = ODENet((F, G), "revnet", steps=2)
    with pytest.raises(ValueError, match=r"dim 1 must be even") as err:
        net(torch.ones(shape))
    assert str(tuple(shape)) in str(err.value)
    assert F.calls == G.calls == 0


@pytest.mark.parametrize("f,steps,match", [
    (Counter(), 2, "'revnet' takes a group of 2 modules"),
    ([Counter(), Counter(), Counter()], None, r"f\[0\] is Counter"),
    ([(Counter(), Counter()), Counter()], None, r"f\[1\] is Counter"),
])
def test_revnet_needs_pairs(f, steps, match):
    with pytest.raises(ValueError, match=match):
        ODENet(f, "revnet", steps=steps)


def test_adaptive_refuses_per_step_modules():
    with pytest.raises(ValueError, match="adaptive solver 'dopri5' integrates a single shared f"):
        ODENet([Counter(), Counter()], "dopri5")


def test_adaptive_refuses_noise_and_scheme_options():
    with pytest.raises(ValueError, match="is deterministic"):
        ODENet(Counter(), "dopri5", steps=1, noise="stochastic_depth")
    with pytest.raises(ValueError, match="adaptive solver 'dopri5' is deterministic and takes no scheme options"):
        ODENet(Counter(), "dopri5", steps=1, k_init=0.0)


def test_adaptive_refuses_an_activation_it_would_not_apply():
    with pytest.raises(ValueError, match="adaptive solver 'dopri5'.*activation"):
        ODENet(Counter(), "dopri5", steps=1, activation=nn.ReLU())


@pytest.mark.parametrize("solver", ["euler", "rk4", "lm", "ab2", "polynet"])
def test_wrong_output_shape_names_both_shapes(solver):
    with pytest.raises(ValueError, match=r"returned shape \(2, 3\) for a state of shape \(2, 4\)"):
        ODENet(Narrow(), solver, steps=2)(torch.ones(2, 4))


def test_wrong_output_shape_of_a_revnet_half():
    with pytest.raises(ValueError, match=r"returned shape \(2, 3\) for a state of shape \(2, 4\)"):
        ODENet((Narrow(), Counter()), "revnet", steps=1)(torch.ones(2, 8))


def test_wrong_output_shape_adaptive():
    with pytest.raises(ValueError, match=r"returned shape \(2, 3\) for a state of shape \(2, 4\)"):
        ODENet(Narrow(), "dopri5", steps=1)(torch.ones(2, 4))


def test_wrong_output_shape_at_a_shortcut_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"returned shape \(5, 3\) .*expected \(5, 2\)"):
        ODENet([Narrow()], "euler", shortcuts=[nn.Linear(4, 2)])(torch.ones(5, 4))


def test_a_module_named_shortcut_is_no_shortcut():
    """A shortcut is passed, never discovered: timm's ConvNeXt block has an identity child
    named `shortcut`, which must not turn its step into a transition."""
    block = Counter()  # f(u) = -u
    block.shortcut = nn.Linear(4, 4)  # a child the block does not use, which P(u) + f(u) would
    net = ODENet([block], "euler")
    assert not net.layers[0].transition
    assert torch.equal(net(torch.ones(2, 4)), torch.zeros(2, 4))  # u + f(u)


@pytest.mark.parametrize("solver,option,takes", [
    ("euler", "k_init", "no options"), ("lm", "truncation", "k_init, channels"),
    ("polynet", "channels", "truncation"),
])
def test_unknown_scheme_option(solver, option, takes):
    with pytest.raises(ValueError, match=f"solver '{solver}' does not take option\\(s\\) {option}; it takes: {takes}"):
        ODENet(Counter(), solver, steps=2, **{option: 1})


@pytest.mark.parametrize("options,match", [
    ({"k_init": (0.0, -0.1)}, "k_init must be a number or a range"),
    ({"truncation": 0}, "truncation must be an integer >= 1"),
])
def test_bad_scheme_option_values(options, match):
    solver = "lm" if "k_init" in options else "polynet"
    with pytest.raises(ValueError, match=match):
        ODENet(Counter(), solver, steps=2, **options)


@pytest.mark.parametrize("diffusion", ["0.1", None, True])
def test_bad_diffusion(diffusion):
    with pytest.raises(ValueError, match="euler_maruyama needs diffusion=g"):
        ODENet(Counter(), "euler_maruyama", steps=2, diffusion=diffusion)


def test_missing_diffusion_is_named():
    with pytest.raises((TypeError, ValueError), match="diffusion"):
        ODENet(Counter(), "euler_maruyama", steps=2)


@pytest.mark.parametrize("solver, match", [
    ("euler", "memory_efficient=True rebuilds the states by inverting the steps; 'euler' is not invertible"),
    ("lm", "memory_efficient=True rebuilds the states by inverting the steps; 'lm' is not invertible"),
    ("dopri5", "adaptive solver 'dopri5' .* takes no activation, shortcuts, checkpoint or memory_efficient"),
])
def test_memory_efficient_is_for_revnet(solver, match):
    with pytest.raises(ValueError, match=match):
        ODENet(Counter(), solver, steps=2, memory_efficient=True)


@pytest.mark.parametrize("options", [{"noise": "stochastic_depth"}, {"checkpoint": True},
                                     {"activation": nn.ReLU()}])
def test_memory_efficient_needs_plain_invertible_steps(options):
    with pytest.raises(ValueError, match="memory_efficient=True recomputes states by inverting"):
        ODENet((Counter(), Counter()), "revnet", steps=2, memory_efficient=True, **options)


def test_inverse_needs_revnet():
    with pytest.raises(ValueError, match="step 1 cannot be inverted: its scheme is not invertible"):
        ODENet(Counter(), "euler", steps=2).inverse(torch.ones(1, 2))


def test_unknown_noise():
    with pytest.raises(ValueError, match="unknown noise 'dropout'; choose one of: stochastic_depth, batch_drop, shake_shake"):
        ODENet(Counter(), "euler", steps=2, noise="dropout")


def test_shake_shake_needs_a_one_function_scheme():
    with pytest.raises(ValueError, match="noise='shake_shake' mixes two branches into a one-function scheme; 'revnet' already takes 2"):
        ODENet((Counter(), Counter()), "revnet", steps=2, noise="shake_shake")


@pytest.mark.parametrize("survival", [0.0, -0.2, 1.5])
def test_bad_survival_probability(survival):
    with pytest.raises(ValueError, match=r"survival must be p_L in \(0, 1\]"):
        ODENet([Counter(), Counter()], "euler", noise="stochastic_depth", survival=survival)


@pytest.mark.parametrize("survival", [[0.9, 0.8, 0.7], [0.9, 0.0], [1.2, 0.5]])
def test_bad_survival_sequence(survival):
    with pytest.raises(ValueError, match=r"survival must be p_L in \(0, 1\] or (2|keep) probabilities"):
        ODENet([Counter(), Counter()], "euler", noise="stochastic_depth", survival=survival)


@pytest.mark.parametrize("base,claimed,failing", [
    (solvers.EULER, 2, 2), (solvers.HEUN, 3, 3), (solvers.MIDPOINT, 3, 3), (solvers.RK3, 4, 4)])
def test_tableau_claiming_a_wrong_order(base, claimed, failing):
    with pytest.raises(ValueError, match=f"claims order {claimed} but fails an order-{failing} condition"):
        solvers.ButcherTableau("wrong", claimed, a=base.a, b=base.b, c=base.c)


def test_tableau_order_must_be_positive():
    with pytest.raises(ValueError, match="order must be at least 1"):
        solvers.ButcherTableau("wrong", 0, a=((),), b=(1.0,), c=(0.0,))


@pytest.mark.parametrize("base,claimed", [(solvers.AB2, 3), (solvers.AB3, 4), (solvers.AB4, 5)])
def test_multistep_claiming_a_wrong_order(base, claimed):
    with pytest.raises(ValueError, match=f"claims order {claimed} but is not exact for u = t\\^{claimed}"):
        solvers.MultistepCoefficients("wrong", claimed, alpha=base.alpha, beta=base.beta)


def test_inconsistent_multistep_coefficients():
    with pytest.raises(ValueError, match="claims order 1 but is not exact for u = t\\^0"):
        solvers.MultistepCoefficients("wrong", 1, alpha=(0.5, 0.0), beta=(1.0, 0.0))
    with pytest.raises(ValueError, match="same, non-zero length"):
        solvers.MultistepCoefficients("wrong", 1, alpha=(1.0,), beta=(1.0, 0.0))


def test_a_shortcut_under_a_pair_scheme_without_a_transition_is_refused_at_construction():
    first, second = nn.Linear(4, 2), nn.Linear(4, 2)
    with pytest.raises(ValueError, match="solver 'fractal' takes 2 functions per step and has no shape-changing "
                                         "step: shortcuts need a one-function scheme or one with a transition"):
        ODENet([(nn.Linear(4, 4), nn.Linear(4, 4)), (first, second)], "fractal",
               shortcuts={1: nn.Linear(4, 2, bias=False)})
