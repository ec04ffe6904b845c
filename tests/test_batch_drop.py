"""The LM-ResNet authors' stochastic depth (solvers.batch_drop): one draw per step and
mini-batch, the kept residual divided by its keep probability, rates linear in depth."""
import math

import pytest
import torch

import solvers
import zoo


def test_death_rates_grow_linearly_from_zero_to_one_minus_p_last():
    assert solvers.death_rates(5, 0.6) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert solvers.death_rates(3, [1.0, 0.9, 0.5]) == pytest.approx([0.0, 0.1, 0.5])
    assert solvers.death_rates(1, 0.5) == [0.0]
    for bad in (0.0, 1.5, [0.5, 0.5], [0.5, 0.5, 0.0]):
        with pytest.raises(ValueError, match="survival must be p_L in"):
            solvers.death_rates(3, bad)


def test_one_draw_per_batch_drops_with_the_death_rate_and_scales_what_it_keeps():
    torch.manual_seed(0)
    d, trials, calls = 0.3, 4000, []
    x = torch.ones(8, 2)

    def f(t, u):
        calls.append(1)
        return 2 * u

    dropped = 0
    for _ in range(trials):
        (g,) = solvers.batch_drop([f], d)
        out = g(0.0, x)
        assert torch.equal(out, torch.zeros_like(x)) or torch.allclose(out, 2 * x / (1 - d))  # the whole batch alike
        dropped += not out.any()
    assert dropped + len(calls) == trials  # a dropped step does not evaluate f
    assert abs(dropped / trials - d) < 5 * math.sqrt(d * (1 - d) / trials)


def test_a_dropped_shape_changing_step_returns_zeros_of_the_given_shape():
    torch.manual_seed(0)
    while True:
        (g,) = solvers.batch_drop([lambda t, u: u[:, :1]], 0.99, shape=torch.Size((4, 1)))
        out = g(0.0, torch.ones(4, 3))
        if not out.any():
            break
    assert out.shape == (4, 1)
    with pytest.raises(ValueError, match=r"death_rate must lie in \[0, 1\)"):
        solvers.batch_drop([lambda t, u: u], 1.0)


def test_the_papers_sd_models_use_the_authors_form_with_their_rates():
    for name, blocks, last in [("lm_resnet56_sd", 27, 0.8), ("lm_resnet110_sd", 54, 0.5)]:
        model = zoo.create(name)
        rates = [d for stage in model.stages for d in stage.death_rates]
        assert rates == pytest.approx([i / (blocks - 1) * (1 - last) for i in range(blocks)])
    per_sample = zoo.create("lm_resnet56_sd", noise="stochastic_depth")  # Huang et al.'s form, as an option
    assert per_sample.stages[0].noise == "stochastic_depth"
    x = torch.randn(2, 3, 16, 16)
    model = zoo.create("lm_resnet56_sd").eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)  # eval: the blocks as they are
