"""The core's structure (issue #9): steps are modules, noise wraps a scheme, capabilities
are declared, one solver specification; and the defects the redesign fixed."""
import copy

import numpy as np
import pytest
import torch
from odes import Counter, registered
from torch import nn

from odenets import ODENet, SolverSpec, Step, solvers, zoo

F64 = torch.float64


def block(d: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(d, 8), nn.Tanh(), nn.Linear(8, d)).double()


# -- the solver specification ---------------------------------------------------------

def test_spec_parses_variants_options_and_noise_once():
    spec = SolverSpec.parse("lm+sd", survival=0.8, k_init=0.0)
    assert (spec.name, spec.noise, spec.survival, dict(spec.options)) == ("lm", "stochastic_depth", 0.8,
                                                                            {"k_init": 0.0})
    assert spec.label == "lm+sd" and SolverSpec.parse("lm", noise="stochastic_depth") == SolverSpec.parse("lm+sd")
    assert SolverSpec.parse(spec) is spec
    assert SolverSpec.parse("lm+sd").survival == solvers.noise.SURVIVAL  # the default, written once


@pytest.mark.parametrize("args, error, match", [
    (("lm+sd",), dict(noise="shake_shake"), "asks for noise 'stochastic_depth' and noise='shake_shake'"),
    (("lm+xx",), {}, r"unknown solver variant \+xx"),
    (("euler",), dict(survival=0.5), "survival=0.5 is the keep probability of stochastic depth"),
    (("euler",), dict(k_init=0.0), "does not take option"),
    (("dopri5",), dict(noise="stochastic_depth"), "is deterministic"),
])
def test_spec_conflicts_are_value_errors(args, error, match):
    with pytest.raises(ValueError, match=match):
        SolverSpec.parse(*args, **error)


def test_spec_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="solver must be a name"):
        SolverSpec.parse(3)
    with pytest.raises(TypeError, match="survival must be p_L"):
        SolverSpec.parse("euler+sd", survival="high")


def test_the_authors_stochastic_depth_decays_from_one():
    """LM-ResNet's authors: d_i = i / (L - 1) * (1 - p_L), so the first block is always kept."""
    ps = SolverSpec.parse("lm+bd", survival=0.5).survival_probabilities(5)
    assert ps == pytest.approx([1.0, 0.875, 0.75, 0.625, 0.5])
    huang = SolverSpec.parse("lm+sd", survival=0.5).survival_probabilities(5)
    assert huang == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5])


def test_registered_factories_with_keyword_or_positional_catch_alls():
    """Defect 4: a **options factory takes any option; a *args factory is not missing one."""
    with registered({"kw_scheme": lambda **kw: solvers.RungeKutta(solvers.EULER),
                     "args_scheme": lambda *args: solvers.RungeKutta(solvers.EULER)}):
        assert isinstance(solvers.get("kw_scheme", foo=1), solvers.RungeKutta)
        assert isinstance(solvers.get("args_scheme"), solvers.RungeKutta)


def test_a_factory_returning_no_scheme_is_a_type_error():
    with registered({"not_a_scheme": lambda: 42}):
        with pytest.raises(TypeError, match="returned a int, not a Scheme"):
            solvers.get("not_a_scheme")


# -- capabilities, not names ----------------------------------------------------------

class Reversed(solvers.RevNet):
    """A user's own invertible pair scheme, under another name."""

    name = "my_revnet"


def test_a_users_scheme_gets_what_its_declarations_allow():
    with registered({"my_revnet": Reversed}):
        torch.manual_seed(0)
        net = ODENet(lambda n: (block(2), block(2)), "my_revnet", steps=3, memory_efficient=True)
        u0 = torch.randn(5, 4, dtype=F64)
        torch.testing.assert_close(net.inverse(net(u0)), u0)
        model = zoo.create("resnet8", solver="my_revnet")  # the zoo builds half-width pairs from splits_state
        assert isinstance(model.stages[0].fns[0], nn.ModuleList)


def test_noise_wraps_a_scheme_and_keeps_its_declarations():
    lm = solvers.get("lm")
    sd = solvers.StochasticDepth(lm, 0.7)
    assert (sd.history, sd.trained, sd.functions, sd.invertible) == (1, ("k",), 1, False)
    assert isinstance(sd.deterministic, solvers.Expectation) and sd.deterministic.p == 0.7
    assert solvers.StochasticDepth(lm, 0.7, per_sample=False).deterministic is lm.deterministic
    ss = solvers.ShakeShake(solvers.get("euler"))
    assert ss.functions == 2 and ss.deterministic.deterministic is ss.deterministic


def test_the_authors_stochastic_depth_one_draw_per_batch_scaled_by_its_probability():
    torch.manual_seed(0)
    u = torch.ones(64, 3, dtype=F64)
    sd = solvers.StochasticDepth(solvers.get("euler"), 0.5, per_sample=False)
    outs = torch.stack([sd.step(lambda t, x: torch.ones_like(x), 0.0, 1.0, u, ())[0] for _ in range(400)])
    per_draw = outs.flatten(1)
    assert torch.all(per_draw == per_draw[:, :1])  # the whole batch shares one draw
    assert set(per_draw[:, 0].tolist()) == {1.0, 3.0}  # dropped: u; kept: u + f / p
    assert abs(per_draw[:, 0].mean().item() - 2.0) < 0.15  # E = u + f, the eval-mode step


# -- steps are modules ----------------------------------------------------------------

def test_each_step_owns_its_shortcut_coefficients_and_time():
    torch.manual_seed(0)
    fs, P = [block(), block(), nn.Linear(4, 2).double(), block(2)], nn.Linear(4, 2, bias=False).double()
    net = ODENet(fs, "lm", dt=0.5, t0=1.0, shortcuts={2: P})
    assert all(isinstance(s, Step) for s in net.layers) and len(net.layers) == net.steps == 4
    assert [s.t for s in net.layers] == [1.0, 1.5, 2.0, 2.5]
    assert net.layers[2].shortcut is P and net.layers[2].transition and not net.layers[1].transition
    assert [sorted(s.coefs) for s in net.layers] == [[], ["k"], [], ["k"]]
    assert sorted(k for k in net.state_dict() if "coefs" in k or "shortcut" in k) == [
        "layers.1.coefs.k", "layers.2.shortcut.weight", "layers.3.coefs.k"]
    assert sum(p.numel() for p in net.coefficients()) == 2


def test_a_shared_f_is_stored_once():
    f = block()
    net = ODENet(f, "rk4", steps=50)
    assert sum(1 for k in net.state_dict() if k.endswith("0.weight")) == 1
    assert all(s.functions == (f,) for s in net.layers)


def test_the_public_step_uses_the_coefficients_and_the_mode():
    """Defect 3: ODENet.step used neither the trained coefficients nor the eval mode."""
    torch.manual_seed(0)
    net = ODENet([block() for _ in range(3)], "lm", k_init=(-0.5, 0.5), noise="stochastic_depth", survival=0.5)
    u0, u1 = torch.randn(2, 4, dtype=F64), torch.randn(2, 4, dtype=F64)
    k, f, p = net.layers[1].coefs["k"], net.fns[1], net.layers[1].scheme.p
    net.eval()
    with torch.no_grad():
        want = (1 - k) * u1 + k * u0 + p * f(u1)  # eval mode: the expectation of the LM step
        got = net.step(1, u1, past=[solvers.Record(u0)])
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="step 1 reads 1 earlier state"):
        net.step(1, u1)


def test_fractal_public_step_takes_its_coefficients():
    torch.manual_seed(0)
    net = ODENet(lambda n: (block(), block()), "fractal", steps=2)
    u = torch.randn(2, 4, dtype=F64)
    c, (f1, f2) = net.layers[0].coefs, net.fns[0]
    with torch.no_grad():
        y = c["k3"] * u + f1(u)
        torch.testing.assert_close(net.step(0, u), c["k1"] * u + c["k2"] * y + f2(y))


def test_shape_change_is_decided_once():
    """Defect 7: a `shortcut` attribute appearing on a module later changes nothing."""
    torch.manual_seed(0)
    fs = [nn.Linear(4, 4).double() for _ in range(3)]  # a module whose forward ignores new children
    net = ODENet(fs, "lm", k_init=-0.3)
    u0 = torch.randn(2, 4, dtype=F64)
    before = net(u0)
    fs[1].shortcut = nn.Linear(4, 4).double()
    torch.testing.assert_close(net(u0), before, rtol=0, atol=0)
    assert not net.layers[1].transition and "k" in net.layers[1].coefs


def test_a_deep_copy_runs_its_own_modules():
    torch.manual_seed(0)
    net = ODENet([block() for _ in range(3)], "midpoint")
    twin = copy.deepcopy(net)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(1.0)
    u0 = torch.randn(2, 4, dtype=F64)
    assert not torch.allclose(twin(u0), net(u0))
    assert all(s.functions[0] is f for s, f in zip(twin.layers, twin.fns))


def test_coefficients_do_not_shift_the_other_weights():
    """At one seed an LM model's weights are its ResNet twin's (a pairing of seeds in an
    ablation compares the schemes, not two initialisations)."""
    for resnet, lm_resnet in [("resnet14", dict(name="resnet14", solver="lm")),
                              ("preact_resnet14", dict(name="lm_resnet14"))]:
        torch.manual_seed(3)
        euler = zoo.create(resnet)
        after_euler = torch.rand(3)
        torch.manual_seed(3)
        lm = zoo.create(**lm_resnet)
        assert torch.equal(torch.rand(3), after_euler)  # the random stream goes on as after the twin
        ours = {k: v for k, v in lm.state_dict().items() if ".coefs." not in k}
        assert ours.keys() == euler.state_dict().keys() and len(ours) < len(lm.state_dict())
        assert all(torch.equal(v, euler.state_dict()[k]) for k, v in ours.items())


# -- inverse and memory-saving, with noise and trajectories ---------------------------

def revnet_pairs(n: int = 4):
    return [(block(2), block(2)) for _ in range(n)]


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_inverse_refuses_a_noisy_net(mode):
    """Defect 1: inverse() of a stochastic-depth revnet returned a wrong u_0 silently."""
    net = ODENet(revnet_pairs(), "revnet", noise="stochastic_depth", survival=0.5).train(mode == "train")
    with pytest.raises(ValueError, match="step 3 cannot be inverted: its scheme is not invertible"):
        net.inverse(torch.randn(3, 4, dtype=F64))


def test_memory_efficient_integrate_refuses_a_trajectory():
    """Defect 2: integrate(trajectory=) on a memory-efficient net kept one state per chunk."""
    net = ODENet(revnet_pairs(), "revnet", memory_efficient=True)
    with pytest.raises(ValueError, match="memory_efficient=True keeps no states but the last"):
        net.integrate(__import__("odenets").Carry(torch.randn(3, 4, dtype=F64)), trajectory=[])


# -- bad input to the API (issue #10) --------------------------------------------------

@pytest.mark.parametrize("dt", [np.float32(0.25), np.float64(0.25), torch.tensor(0.25), 1])
def test_dt_takes_any_real_number(dt):
    net = ODENet(Counter(), "euler", steps=2, dt=dt)
    assert net.dt == float(dt) and isinstance(net.dt, float)


@pytest.mark.parametrize("name, value, error", [
    ("rtol", -1.0, ValueError), ("atol", float("nan"), ValueError), ("rtol", "small", TypeError),
    ("dt", "0.1", TypeError), ("dt", torch.ones(2), TypeError),
])
def test_bad_numbers_are_refused(name, value, error):
    with pytest.raises(error, match=name):
        ODENet(Counter(), "dopri5", steps=1, **{name: value})


class Pair(nn.Module):
    def forward(self, u):
        return u, u


class Wider(nn.Module):
    def forward(self, u):
        return u.double()


def test_a_module_returning_a_tuple_is_named():
    with pytest.raises(TypeError, match=r"f at step 0 \(Pair\) returned a tuple"):
        ODENet(Pair(), "euler", steps=2)(torch.ones(2, 3))


def test_a_module_widening_the_dtype_is_named():
    with pytest.raises(TypeError, match="f at step 0 returned torch.float64 for a torch.float32 state"):
        ODENet(Wider(), "euler", steps=2)(torch.ones(2, 3))


def test_a_narrower_output_under_autocast_is_allowed():
    f = nn.Linear(3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ODENet(f, "euler", steps=2)(torch.ones(2, 3))
    assert out.dtype == torch.float32
