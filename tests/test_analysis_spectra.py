"""Step spectra: eigenvalues of dt * J_n against numpy's and against the stability regions'
published formulas (Hairer & Wanner, Solving ODEs II, §IV.2)."""
import numpy as np
import pytest
import torch
from odenets.zoo.blocks import BasicBlock
from torch import nn

from odenets import ODENet, solvers, zoo
from odenets.analysis import format_spectra, plot_spectra, step_spectra

# eigenvalues of A: inside every region, a complex pair, a pair that only RK4 and LM(k=-0.5)
# take, one only LM(k=-0.5) takes, and one with positive real part that none takes
SPECTRUM = (-0.5, complex(-0.6, 0.5), complex(-1.9, 0.6), -2.7, 0.1)


def linear(spectrum=SPECTRUM, seed: int = 0) -> nn.Linear:
    """f(u) = A u with A = P D P^{-1}: D block diagonal (2x2 blocks [[a, b], [-b, a]] for a + ib)."""
    blocks = []
    for z in spectrum:
        z = complex(z)
        blocks.append(torch.tensor([[z.real]]) if z.imag == 0 else torch.tensor([[z.real, z.imag], [-z.imag, z.real]]))
    d = torch.block_diag(*blocks).double()
    p = torch.randn(len(d), len(d), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    f = nn.Linear(len(d), len(d), bias=False).double()
    with torch.no_grad():
        f.weight.copy_(p @ d @ torch.linalg.inv(p))
    return f


def inside_euler(z: complex) -> bool:
    return abs(1 + z) <= 1


def inside_rk4(z: complex) -> bool:
    return abs(1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24) <= 1


def inside_lm(k: float):
    """The roots of zeta^2 - (1 - k + z) zeta - k, all in the closed unit disc."""
    return lambda z: bool((np.abs(np.roots([1.0, -(1 - k + z), -k])) <= 1 + 1e-12).all())


def sorted_values(z) -> np.ndarray:
    z = np.asarray(z, dtype=np.complex128)
    return z[np.lexsort((z.imag.round(8), z.real.round(8)))]


@pytest.mark.parametrize("solver, options, oracle", [
    ("euler", {}, inside_euler), ("rk4", {}, inside_rk4), ("lm", {"k_init": -0.5}, inside_lm(-0.5))])
def test_linear_field_eigenvalues_and_verdicts(solver, options, oracle):
    f = linear()
    dt = 0.9
    net = ODENet(f, solver=solver, steps=3, dt=dt, **options)
    records = step_spectra(net, torch.randn(2, f.in_features, dtype=torch.float64))
    want = sorted_values(np.linalg.eigvals(dt * f.weight.detach().numpy()))
    verdicts = [oracle(z) for z in want]
    assert 0 < sum(verdicts) < len(verdicts)  # the test separates inside from outside
    assert [(r.depth, r.step) for r in records] == [(0, 0), (1, 1), (2, 2)]
    for r in records:
        assert r.method == "exact" and r.eigenvalues.shape == (2, len(want))
        for image in r.eigenvalues:  # a linear field: both images see the same J
            assert np.allclose(sorted_values(image.numpy()), want, atol=1e-9)
        assert r.radius == pytest.approx(np.abs(want).max())
        assert r.max_real == pytest.approx(want.real.max())
    first = inside_euler if solver == "lm" else oracle  # LM's first step has no u_{n-1}: an Euler step
    assert records[0].inside_fraction == pytest.approx(np.mean([first(z) for z in want]))
    for r in records[1:]:
        assert r.inside_fraction == pytest.approx(np.mean(verdicts))


def test_lm_verdicts_follow_each_steps_learned_k():
    f = linear()
    net = ODENet(f, solver="lm", steps=3, dt=1.0)
    ks = [-0.5, 0.5]
    with torch.no_grad():
        for coefs, k in zip(net.coefs[1:], ks):
            coefs["k"].fill_(k)
    records = step_spectra(net, torch.randn(1, f.in_features, dtype=torch.float64))
    want = np.linalg.eigvals(f.weight.detach().numpy())
    fractions = [np.mean([inside_lm(k)(z) for z in want]) for k in ks]
    assert fractions[0] != fractions[1]
    assert [r.inside_fraction for r in records[1:]] == pytest.approx(fractions)
    assert [float(r.coefficients["k"]) for r in records[1:]] == pytest.approx(ks)


def test_top_keeps_the_largest_in_modulus_and_arnoldi_spans_a_small_space():
    f = linear()
    net = ODENet(f, solver="euler", steps=1)
    x = torch.randn(3, f.in_features, dtype=torch.float64)
    want = np.linalg.eigvals(f.weight.detach().numpy())
    largest = np.sort(np.abs(want))[::-1]
    exact, = step_spectra(net, x, top=3)
    assert exact.method == "exact"
    assert np.allclose(np.sort(exact.eigenvalues.abs().numpy(), 1)[:, ::-1], largest[:3])
    # a Krylov space as large as the state holds J whole: its Ritz values are the eigenvalues
    krylov, = step_spectra(net, x, top=len(want), krylov=len(want), exact_limit=0)
    assert krylov.method == "arnoldi"
    for image in krylov.eigenvalues:
        assert np.allclose(sorted_values(image.numpy()), sorted_values(want), atol=1e-8)


def random_block(channels: int, seed: int) -> BasicBlock:
    """A BasicBlock in eval mode with running statistics and BN scales away from their initial values."""
    torch.manual_seed(seed)
    block = BasicBlock(channels, channels).eval()
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return block


def test_conv_block_arnoldi_agrees_with_the_exact_jacobian():
    blocks = [random_block(4, 0), random_block(4, 1)]
    net = ODENet(blocks, solver="euler", dt=0.5)
    x = torch.randn(3, 4, 6, 6)  # 144 numbers per image
    exact = step_spectra(net, x)
    krylov = step_spectra(net, x, top=4, krylov=60, exact_limit=0)
    # the oracle: each image's Jacobian by autograd, its eigenvalues by numpy, at the states visited
    states = [x, x + 0.5 * blocks[0](x)]
    for n, (e, k) in enumerate(zip(exact, krylov)):
        assert e.method == "exact" and k.method == "arnoldi" and e.eigenvalues.shape == (3, 144)
        for i in range(3):
            jac = torch.autograd.functional.jacobian(lambda v: blocks[n](v[None])[0], states[n][i])
            want = 0.5 * np.linalg.eigvals(jac.reshape(144, 144).double().numpy())
            assert np.allclose(sorted_values(e.eigenvalues[i].numpy()), sorted_values(want), atol=1e-5)
            top = np.sort(np.abs(want))[::-1][:4]
            assert np.allclose(np.sort(k.eigenvalues[i].abs().numpy())[::-1], top, rtol=1e-3)
        assert k.radius == pytest.approx(e.radius, rel=1e-3)
        assert k.max_real == pytest.approx(e.max_real, rel=1e-3, abs=1e-3)
    assert exact[0].eigenvalues[0].abs().max() != pytest.approx(float(exact[0].eigenvalues[1].abs().max()))


def test_zoo_model_skips_the_transitions_and_restores_the_model():
    model = zoo.create("lm_resnet8", num_classes=10, in_chans=1)  # three stages of one block
    model.train()
    records = step_spectra(model, torch.randn(2, 1, 8, 8), top=3)
    assert [(r.stage, r.step) for r in records] == [("stages.0", 0)]  # stages 1 and 2 open with a transition
    assert model.training
    assert all("integrate" not in vars(net) for net in model.stages)
    model = zoo.create("lm_resnet14", num_classes=10, in_chans=1)  # two blocks a stage
    records = step_spectra(model, torch.randn(2, 1, 8, 8), top=3)
    assert [(r.stage, r.step) for r in records] == [("stages.0", 0), ("stages.0", 1), ("stages.1", 1),
                                                     ("stages.2", 1)]
    assert [r.region_name.split("(")[0] for r in records] == ["euler", "lm", "lm", "lm"]
    assert [r.depth for r in records] == [0, 1, 2, 3]
    assert "stages.1" in format_spectra(records)


def test_per_channel_k_counts_a_value_inside_when_every_channels_region_holds_it():
    f = linear()
    channels = f.in_features
    net = ODENet(f, solver="lm", steps=2, channels=channels)
    ks = torch.tensor([-0.5] * (channels - 2) + [0.5] * 2, dtype=torch.float64)
    with torch.no_grad():
        net.coefs[1]["k"].copy_(ks)
    last = step_spectra(net, torch.randn(2, channels, dtype=torch.float64))[-1]
    assert last.region_name == "lm(per channel)"
    want = np.linalg.eigvals(f.weight.detach().numpy())
    every = np.mean([inside_lm(-0.5)(z) and inside_lm(0.5)(z) for z in want])
    assert every != np.mean([inside_lm(-0.5)(z) for z in want])
    assert last.inside_fraction == pytest.approx(every)


@pytest.mark.parametrize("solver, R", [("euler", lambda z: 1 + z),
                                       ("rk4", lambda z: 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24)])
def test_stochastic_depth_is_judged_by_its_expectation(solver, R):
    """In eval mode a step kept with probability p is p S(f) + (1 - p) S(0): on u' = lambda u it
    multiplies u by 1 - p + p R(z) (not R(p z): for rk4 they differ), with z = dt lambda of f itself."""
    f, dt = linear(), 1.5
    net = ODENet(f, solver=solver, steps=3, dt=dt, noise="stochastic_depth", survival=0.4)
    records = step_spectra(net, torch.randn(1, f.in_features, dtype=torch.float64))
    want = dt * np.linalg.eigvals(f.weight.detach().numpy())
    survival = [step.scheme.p for step in net.layers]
    assert survival[-1] == pytest.approx(0.4)
    assert [r.radius for r in records] == pytest.approx([np.abs(want).max()] * 3)
    expected = [np.mean([abs(1 - p + p * R(z)) <= 1 + 1e-12 for z in want]) for p in survival]
    assert len(set(expected)) > 1  # the test tells the steps apart
    assert [r.inside_fraction for r in records] == pytest.approx(expected)
    if solver == "rk4":  # and the expectation from the step with f scaled by p
        assert expected != [np.mean([abs(R(p * z)) <= 1 for z in want]) for p in survival]


def test_bad_input():
    f = linear()
    net = ODENet(f, steps=2)
    x = torch.randn(1, f.in_features, dtype=torch.float64)
    with pytest.raises(TypeError, match="nn.Module"):
        step_spectra(f.weight, x)
    with pytest.raises(TypeError, match="tensor"):
        step_spectra(net, [1.0])
    with pytest.raises(TypeError, match="top must be an int"):
        step_spectra(net, x, top=2.0)
    with pytest.raises(ValueError, match="top must be at least 1"):
        step_spectra(net, x, top=0)
    with pytest.raises(ValueError, match="krylov"):
        step_spectra(net, x, top=8, krylov=4)
    with pytest.raises(ValueError, match="no ODENet"):
        step_spectra(f, x)
    with pytest.raises(ValueError, match="adaptive"):
        step_spectra(ODENet(f, solver="dopri5", steps=1), x)
    pair = ODENet([(nn.Linear(2, 2), nn.Linear(2, 2))], solver="revnet")
    with pytest.raises(ValueError, match="2 functions per step"):
        step_spectra(pair, torch.randn(1, 4))
    assert "integrate" not in vars(pair)


def test_figure(tmp_path):
    model = zoo.create("resnet14", num_classes=10, in_chans=1)
    records = step_spectra(model, torch.randn(2, 1, 8, 8), top=4)
    out = tmp_path / "spectra.png"
    fig = plot_spectra({"a": records, "b": records[:2]}, out)
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert len(fig.axes) >= 3 + 1 + 2  # three stage panels, the colour bar, radius and inside
    with pytest.raises(ValueError):
        plot_spectra({"a": []})
    assert solvers.get("euler").name == records[0].region_name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_eigenvalues():
    model = zoo.create("lm_resnet14", num_classes=10, in_chans=1).double().eval()  # float64: no TF32 on the GPU
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    cpu = step_spectra(model, x, top=4)
    gpu = step_spectra(model.cuda(), x.cuda(), top=4)
    assert [r.method for r in gpu] == ["arnoldi", "arnoldi", "exact", "exact"]
    for a, b in zip(cpu, gpu):
        assert b.eigenvalues.device.type == "cpu"
        assert np.allclose(np.sort(a.eigenvalues.abs().numpy(), 1), np.sort(b.eigenvalues.abs().numpy(), 1), rtol=1e-6)
        assert b.inside_fraction == pytest.approx(a.inside_fraction)
