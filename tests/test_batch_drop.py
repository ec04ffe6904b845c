"""The LM-ResNet authors' stochastic depth (noise='batch_drop'): one draw per step and
mini-batch, the kept residual divided by its keep probability, rates linear in depth."""
import math

import pytest
import torch

from odenets import solvers, zoo


def test_death_rates_grow_linearly_from_zero_to_one_minus_p_last():
    keep = solvers.survival_probabilities(5, 0.6, authors=True)
    assert [1 - p for p in keep] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert solvers.survival_probabilities(1, 0.5, authors=True) == [1.0]
    assert solvers.SolverSpec.parse("lm+bd", survival=0.6).survival_probabilities(5) == pytest.approx(keep)
    for bad in (0.0, 1.5, [0.5, 0.5], [0.5, 0.5, 0.0]):
        with pytest.raises(ValueError, match="survival must be p_L in"):
            solvers.survival_probabilities(3, bad, authors=True)


def test_one_draw_per_batch_drops_with_the_death_rate_and_scales_what_it_keeps():
    torch.manual_seed(0)
    d, trials, calls = 0.3, 4000, []
    x = torch.ones(8, 2)
    sd = solvers.StochasticDepth(solvers.get("euler"), 1 - d, per_sample=False)
    assert sd.skips_functions

    def f(t, u):
        calls.append(1)
        return 2 * u

    dropped = 0
    for _ in range(trials):
        out, _ = sd.step(f, 0.0, 1.0, x, ())
        assert torch.equal(out, x) or torch.allclose(out, x + 2 * x / (1 - d))  # the whole batch alike
        dropped += torch.equal(out, x)
    assert dropped + len(calls) == trials  # a dropped step does not evaluate f
    assert abs(dropped / trials - d) < 5 * math.sqrt(d * (1 - d) / trials)
    assert torch.equal(sd.deterministic.step(f, 0.0, 1.0, x, ())[0], 3 * x)  # eval: the step as it is


def test_a_dropped_shape_changing_step_is_its_shortcut():
    torch.manual_seed(0)
    sd = solvers.StochasticDepth(solvers.get("euler"), 0.01, per_sample=False)
    u, pu = torch.ones(4, 3), torch.full((4, 1), 5.0)
    while True:
        out, _ = sd.transition(lambda t, v: v[:, :1], 0.0, 1.0, u, pu)
        if torch.equal(out, pu):
            break
    assert out.shape == (4, 1)


def test_the_papers_sd_models_use_the_authors_form_with_their_rates():
    for name, blocks, last in [("lm_resnet56_sd", 27, 0.8), ("lm_resnet110_sd", 54, 0.5)]:
        model = zoo.create(name)
        rates = [1 - s.scheme.p for stage in model.stages for s in stage.layers]
        assert rates == pytest.approx([i / (blocks - 1) * (1 - last) for i in range(blocks)])
        assert all(not s.scheme.per_sample for stage in model.stages for s in stage.layers)
        assert all(stage.drops_steps for stage in model.stages)
    per_sample = zoo.create("lm_resnet56_sd", noise="stochastic_depth")  # Huang et al.'s form, as an option
    assert per_sample.stages[0].noise == "stochastic_depth"
    x = torch.randn(2, 3, 16, 16)
    model = zoo.create("lm_resnet56_sd").eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)  # eval: the blocks as they are
