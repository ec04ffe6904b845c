"""The model zoo: registry, architectures, parameter counts, the LM recurrence across
stages, stochastic depth, solvers, RevNet memory and gradients, state dicts."""
import pytest
import torch
import torch.nn.functional as F
import torchvision
from odenets.zoo.models import cifar_preact_bottleneck, cifar_resnet
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

from odenets import ODENet, solvers, zoo

# figures from the papers (He et al. 2016a/b, Xie et al. 2017), 10 classes
CIFAR_PARAMS = {"resnet20": 0.27e6, "resnet32": 0.46e6, "resnet44": 0.66e6, "resnet56": 0.85e6,
                "resnet110": 1.7e6, "resnet164": 1.7e6, "resnext29_8x64d": 34.4e6, "resnext29_16x64d": 68.1e6}
IMAGENET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- registry ------------------------------------------------------------------------------

def test_every_model_has_an_lm_version_and_lists_filter():
    names = zoo.list_models()
    for name in ["resnet8", "resnet20", "resnet110", "resnet164", "resnext29_16x64d", "resnet50",
                 "lm_resnet56_sd", "lm_resnet110_sd"]:
        assert name in names
    plain = [n for n in names if not n.startswith(("lm_", "preact_"))]
    cifar = [f"resnet{d}" for d in (8, 14, 20, 32, 44, 56, 110, 164)]
    # He et al.'s CIFAR nets have no lm_ version: lm_resnetN is the authors' network, preact_resnetN its Euler twin
    assert all(f"lm_{n}" in names for n in plain if n not in cifar)
    assert all(f"lm_{n}" in names and f"preact_{n}" in names for n in cifar)
    assert zoo.list_models("lm_*") == [n for n in names if n.startswith("lm_")]
    assert zoo.list_models("resnet1*") == ["resnet14", "resnet18", "resnet101", "resnet110", "resnet152",
                                           "resnet164"]


def test_unknown_model_lists_known_names_and_close_matches():
    with pytest.raises(ValueError, match=r"unknown model 'lm_resnt56'.*Did you mean 'lm_resnet56'.*Known models:.*"
                                         r"resnext29_8x64d"):
        zoo.create("lm_resnt56")


@pytest.mark.parametrize("options, message", [
    (dict(survival=0.5), r"survival=0.5 is the keep probability of stochastic depth; this solver has noise=None"),
    (dict(truncation=3), r"solver 'euler' does not take option\(s\) truncation.*model options: preact"),
    (dict(solver="lm", preactt=True), r"solver 'lm' does not take option\(s\) preactt; it takes: k_init, channels"),
    (dict(solver="nope"), r"unknown solver 'nope'; known solvers: .*polynet"),
    (dict(solver="dopri5"), r"adaptive solver 'dopri5'"),
    (dict(solver="fractal"), r"zoo models build pairs only for schemes that split the state into halves \('revnet'\)"),
    (dict(memory_efficient=True), r"memory_efficient=True rebuilds the states by inverting the steps; 'euler' is not invertible"),
    (dict(solver="revnet", preact=False), r"revnet' needs pre-activation blocks"),
    (dict(noise="dropout"), r"unknown noise 'dropout'"),
    (dict(noise="shake_shake"), r"shake_shake"),
    (dict(noise="stochastic_depth", survival=[0.5] * 3), r"9 probabilities in \(0, 1\], got \(0.5, 0.5, 0.5\)"),
    (dict(noise="stochastic_depth", survival=[1.5] * 9), r"keep probabilities in \(0, 1\], got \[1.5"),
    (dict(noise="stochastic_depth", survival=1.5), r"p_L in \(0, 1\]"),
    (dict(num_classes=0), r"num_classes must be a positive integer"),
    (dict(solver="lm", channels=16), r"channels=16: a zoo model takes channels=True"),
    (dict(solver="lm", channels=False), r"channels=False: a zoo model takes channels=True"),
    (dict(channels=True), r"solver 'euler' does not take option\(s\) channels"),
    (dict(solver="euler_maruyama"), r"diffusion"),
])
def test_bad_options_raise_clear_errors(options, message):
    with pytest.raises(ValueError, match=r"model 'resnet20': .*" + message):
        zoo.create("resnet20", **options)


@pytest.mark.parametrize("name, option", [("resnet20", "depth"), ("resnet20", "stem"), ("resnet50", "block"),
                                          ("lm_resnet56_sd", "block"), ("tiny", "foo")])
def test_an_option_the_builder_cannot_take_is_a_value_error_listing_the_options(monkeypatch, name, option):
    def tiny(num_classes: int = 10, in_chans: int = 3, solver: str = "euler") -> nn.Module:
        return nn.Linear(in_chans, num_classes)

    monkeypatch.setitem(zoo.registry._MODELS, "tiny", tiny)
    takes = "num_classes, in_chans, solver$" if name == "tiny" else "num_classes, in_chans, solver, .*survival.*"
    with pytest.raises(ValueError, match=rf"model '{name}' does not take option '{option}'; it takes: {takes}"):
        zoo.create(name, **{option: 1})
    with pytest.raises(TypeError, match="solver must be a name"):  # a TypeError of the builder's own stays one
        zoo.create("resnet20", solver=3)


# -- architectures ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CIFAR_PARAMS))
def test_cifar_parameter_counts_match_the_papers(name):
    assert count(zoo.create(name)) == pytest.approx(CIFAR_PARAMS[name], rel=0.03)


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_parameter_counts_equal_torchvision(name):
    reference = count(getattr(torchvision.models, name)(weights=None))
    assert count(zoo.create(name)) == reference
    lm = zoo.create(f"lm_{name}")
    blocks = sum(stage.steps for stage in lm.stages)
    # one k per block but each stage's first: a downsampling block, or the network's first
    assert count(lm) == reference + blocks - len(lm.stages)
    fc = zoo.create(name).head.fc
    assert count(zoo.create(name, num_classes=10)) == reference - 990 * (fc.in_features + 1)


def test_resnet50_has_torchvisions_exact_count():
    assert count(zoo.create("resnet50")) == 25_557_032


def test_lm_models_start_with_k_uniform_in_the_papers_range():
    model = zoo.create("lm_resnet110")
    ks = torch.stack([c["k"] for stage in model.stages for c in stage.coefs if "k" in c])
    assert len(ks) == 54 - 3 and ks.min() >= -0.1 and ks.max() <= 0 and ks.std() > 0.01
    assert model.stages[0].solver == "lm" and len(model.stages[0].coefs[0]) == 0  # step 0 has no history
    assert all(len(stage.coefs[0]) == 0 for stage in model.stages[1:])  # downsampling: a ResNet step


def test_stage_structure_and_readable_state_dict_keys():
    model = zoo.create("lm_resnet20")
    keys = model.state_dict().keys()
    for key in ["stem.conv.weight", "stages.0.fns.1.conv1.weight", "stages.0.layers.1.coefs.k",
                "stages.1.layers.1.coefs.k", "head.fc.weight"]:
        assert key in keys
    assert isinstance(model.stages[1].layers[0].shortcut, zoo.PreActProjection)
    assert model.stages[0].layers[0].shortcut is None and not hasattr(model.stages[0].fns[0], "shortcut")
    assert all(s.activation is None for s in model.stages)
    he = zoo.create("resnet20", solver="lm")
    assert isinstance(he.stages[1].layers[0].shortcut, zoo.PadShortcut)
    assert all(isinstance(s.activation, nn.ReLU) for s in he.stages)
    preact = zoo.create("resnet20", preact=True)
    assert isinstance(preact.stages[0].fns[0], zoo.PreActBasic) and preact.stages[0].activation is None
    assert isinstance(preact.head.bn, nn.BatchNorm2d)


def test_small_models_run_on_one_channel_8x8_digits():
    for name in ["resnet8", "lm_resnet8", "resnet14"]:
        out = zoo.create(name, num_classes=10, in_chans=1)(torch.randn(3, 1, 8, 8))
        assert out.shape == (3, 10)


def test_per_channel_k():
    model = zoo.create("lm_resnet14", channels=True)
    assert [tuple(s.coefs[1]["k"].shape) for s in model.stages] == [(16,), (32,), (64,)]
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


# -- the LM recurrence across stages, against the paper's formula ---------------------------

def lm_oracle(model, x, survival=None):
    """u_{n+1} = act((1 - k_n) u_n + k_n u_{n-1} + p_n f_n(u_n)), written out over the whole
    network as the LM-ResNet authors' code computes it: the network's first block and
    every block with a shortcut P take the ResNet step act(P(u_n) + p_n f_n(u_n)), and the
    block after a shortcut reads P(u_n) as its u_{n-1}; act is ReLU in a post-activation
    network, p_n = 1 without stochastic depth."""
    u, prev, n_total = model.stem(x), None, 0
    for stage in model.stages:
        for n, block in enumerate(stage.fns):
            P = stage.layers[n].shortcut
            p = 1.0 if survival is None else survival[n_total]
            pu = u if P is None else P(u)
            new = pu + p * block(u)
            if prev is not None and P is None:
                k = stage.coefs[n]["k"]
                new = (1 - k) * u + k * prev + p * block(u)
            act = F.relu if isinstance(stage.activation, nn.ReLU) else (lambda v: v)
            prev, u, n_total = pu, act(new), n_total + 1
    return model.head(u)


def randomise_batchnorm(model):
    """Batch-norm statistics and affine weights away from their identity defaults."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


def randomise(model):
    torch.manual_seed(1)
    randomise_batchnorm(model)
    with torch.no_grad():
        for stage in model.stages:
            for c in stage.coefs:
                for k in c.values():
                    k.uniform_(-0.6, 0.6)
    return model.eval()


@pytest.mark.parametrize("build", [
    lambda: zoo.create("resnet14", solver="lm"),  # option A shortcuts, ReLU after the addition
    lambda: zoo.create("lm_resnet14"),  # the authors' network: BN-ReLU-conv1x1 shortcuts, pre-activation
    lambda: cifar_preact_bottleneck(20, solver="lm"),  # resnet164's blocks: projections, pre-activation
    lambda: cifar_preact_bottleneck(20, solver="lm", preact=False),
], ids=["resnet14", "authors-resnet14", "preact-bottleneck", "bottleneck"])
def test_lm_model_follows_the_lm_recurrence_through_stage_boundaries(build):
    model = randomise(build())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out, lm_oracle(model, x), rtol=1e-4, atol=1e-5)
        for stage in model.stages:
            for step in stage.layers:  # the same weights as a ResNet: a different function
                step.eval_scheme = solvers.get("euler")
        assert not torch.allclose(out, model(x), atol=1e-3)


def test_stochastic_depth_lm_decays_linearly_over_the_whole_depth_and_eval_takes_the_mean():
    for name, depth, last in [("lm_resnet56_sd", 27, 0.8), ("lm_resnet110_sd", 54, 0.5)]:
        model = zoo.create(name, noise="stochastic_depth")  # Huang et al.'s form; the authors' is the default
        ps = [s.scheme.p for stage in model.stages for s in stage.layers]
        assert ps == pytest.approx([1 - (n + 1) / depth * (1 - last) for n in range(depth)])
    model = randomise(zoo.create("resnet14", solver="lm", noise="stochastic_depth", survival=0.5))
    ps = [s.scheme.p for stage in model.stages for s in stage.layers]
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        first = model(x)
        torch.testing.assert_close(model(x), first, rtol=0, atol=0)  # eval: deterministic
        torch.testing.assert_close(first, lm_oracle(model, x, ps), rtol=1e-4, atol=1e-5)
        model.train()
        torch.manual_seed(0)
        a = model(x)
        assert not torch.allclose(a, model(x))  # training: blocks dropped at random


# -- solvers -------------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["euler", "lm", "midpoint", "polynet", "revnet"])
def test_one_architecture_under_each_solver_trains_a_step(solver):
    torch.manual_seed(0)
    model = zoo.create("resnet14", num_classes=10, in_chans=1, solver=solver)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert all(s.solver == solver for s in model.stages)


# -- RevNet ----------------------------------------------------------------------------------

def saved_bytes(model, x) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return total


def test_revnet_activation_memory_does_not_grow_with_depth():
    x = torch.randn(2, 3, 8, 8)
    efficient = [saved_bytes(cifar_resnet(d, solver="revnet", memory_efficient=True), x) for d in (14, 26)]
    plain = [saved_bytes(cifar_resnet(d, solver="revnet"), x) for d in (14, 26)]
    assert efficient[0] == efficient[1]
    assert plain[1] > plain[0] > efficient[0]


def test_revnet_blocks_are_half_width_pairs_with_the_transition_on_F():
    model = zoo.create("resnet20", solver="revnet")
    F_, G = model.stages[1].fns[0]
    assert (F_.conv1.in_channels, F_.conv1.out_channels, F_.conv1.stride) == (8, 16, (2, 2))
    assert (G.conv1.in_channels, G.conv1.stride) == (16, (1, 1)) and isinstance(model.stages[1].layers[0].shortcut, zoo.Halves)


def test_memory_efficient_revnet_gradients_equal_backprop():
    torch.manual_seed(0)
    x, y = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (4,))
    efficient = zoo.create("resnet14", solver="revnet", memory_efficient=True).double()
    plain = zoo.create("resnet14", solver="revnet").double()
    plain.load_state_dict(efficient.state_dict())
    grads = []
    for model in (efficient, plain):
        xi = x.clone().requires_grad_(True)
        F.cross_entropy(model(xi), y).backward()
        grads.append([xi.grad] + [p.grad for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


# -- torchvision and state dicts -------------------------------------------------------------

def randomised_torchvision(name):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None)
    randomise_batchnorm(model)
    return model.eval()


@pytest.mark.parametrize("name", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow),
                                  pytest.param("resnext50_32x4d", marks=pytest.mark.slow)])
def test_from_torchvision_computes_the_same_function(name):
    reference = randomised_torchvision(name)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
        for solver in ("euler", "lm"):
            model = zoo.from_torchvision(reference, solver=solver)
            assert not model.training
            torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
        ks = [c["k"] for net in model.modules() if isinstance(net, ODENet) for c in net.coefs if "k" in c]
        # a k per block but the first of each of the four stages (a downsampling block, or the first)
        assert len(ks) == sum(len(getattr(reference, f"layer{i}")) for i in range(1, 5)) - 4
        assert all(k.item() == 0.0 for k in ks)  # the LM-ResNet starts as the ResNet
        ks[0].fill_(0.5)
        assert not torch.allclose(model(x), expected, atol=1e-3)


def test_from_torchvision_rejects_other_models():
    with pytest.raises(TypeError, match="torchvision.models.ResNet"):
        zoo.from_torchvision(nn.Linear(2, 2))


def test_state_dict_round_trip(tmp_path):
    model = randomise(zoo.create("lm_resnet20"))
    path = tmp_path / "lm_resnet20.pt"
    torch.save(model.state_dict(), path)
    fresh = zoo.create("lm_resnet20")
    fresh.load_state_dict(torch.load(path, weights_only=True))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), model(x), rtol=0, atol=0)
