"""odenets.convert against the models it converts: each family's original model is the
oracle (same function at the scheme's Euler point), and hand-written LM recurrences over
the original blocks check the chaining of stages and of a transformer block's sub-steps."""
from __future__ import annotations

import io
import subprocess
import sys

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

import odenets

timm = pytest.importorskip("timm")


def randomise(model: nn.Module) -> nn.Module:
    """Batch-norm statistics and LayerScales away from their initial values, so that eval
    mode and every branch count."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            m.weight.data.copy_(0.5 + 0.5 * torch.rand(m.weight.shape, generator=g))
    return model.eval()


def image():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


FAMILIES = {
    "tv_resnet": (lambda: ResNet(BasicBlock, [1, 2, 1, 1], num_classes=10), image),
    "tv_resnext": (lambda: ResNet(Bottleneck, [1, 2, 1, 1], groups=4, width_per_group=8, num_classes=10), image),
    "tv_resnet_dilated": (lambda: ResNet(Bottleneck, [1, 2, 1, 1], replace_stride_with_dilation=[False, True, True],
                                         num_classes=10), image),
    "tv_wide_resnet": (lambda: ResNet(Bottleneck, [2, 1, 1, 1], width_per_group=128, num_classes=10), image),
    "timm_resnet18": (lambda: timm.create_model("resnet18", num_classes=10, drop_path_rate=0.1), image),
    "timm_resnet50": (lambda: timm.create_model("resnet50", layers=(1, 2, 1, 1), num_classes=10), image),
    "timm_convnext": (lambda: timm.create_model("convnext_atto", depths=(1, 2, 2, 1), dims=(16, 24, 32, 48),
                                                ls_init_value=0.5, drop_path_rate=0.1, num_classes=10), image),
    "timm_convnext_linear": (lambda: timm.create_model("convnext_atto", depths=(2, 2, 1, 1), dims=(16, 24, 32, 48),
                                                       conv_mlp=False, ls_init_value=0.5, num_classes=10), image),
    "timm_vit": (lambda: timm.create_model("vit_tiny_patch16_224", depth=2, embed_dim=64, num_heads=2, img_size=32,
                                           patch_size=8, init_values=0.5, drop_path_rate=0.1, num_classes=10), image),
    "timm_deit": (lambda: timm.create_model("deit_tiny_patch16_224", depth=2, embed_dim=64, num_heads=2, img_size=32,
                                            patch_size=8, num_classes=10), image),
    "transformer_encoder": (lambda: nn.TransformerEncoder(
        nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True, norm_first=True), 3,
        norm=nn.LayerNorm(16), enable_nested_tensor=False),
        lambda: torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(0))),
}


def family(name: str):
    make, data = FAMILIES[name]
    torch.manual_seed(0)
    return randomise(make()), data()


def coefficients(model: nn.Module) -> list[torch.Tensor]:
    return [p for m in model.modules() if isinstance(m, odenets.ODENet) for p in m.coefficients()]


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("solver", ["lm", "euler"])
def test_same_function_right_after_conversion(name, solver):
    model, x = family(name)
    converted = odenets.convert(model, solver)
    assert not converted.training
    assert type(converted) is type(model) or isinstance(model, nn.TransformerEncoder)  # whose layers it runs itself
    assert any(isinstance(m, odenets.ODENet) for m in converted.modules())
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x), rtol=1e-5, atol=1e-5)
    # a copy: the original keeps its blocks, and no weight is shared
    ours = {id(p) for p in converted.parameters()}
    assert not ours & {id(p) for p in model.parameters()}
    weights = sum(p.numel() for p in converted.parameters()) - sum(c.numel() for c in coefficients(converted))
    assert weights == sum(p.numel() for p in model.parameters())
    if solver == "lm":
        assert coefficients(converted) and all(k.item() == 0.0 for k in coefficients(converted))


@pytest.mark.parametrize("name", FAMILIES)
def test_midpoint_runs_and_is_another_function(name):
    model, x = family(name)
    converted = odenets.convert(model, "midpoint")
    with torch.no_grad():
        out, ref = converted(x), model(x)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert (out - ref).abs().max() > 1e-4  # midpoint has no point where it is the block (same function: 1e-5)


@pytest.mark.parametrize("name", FAMILIES)
def test_gradients_reach_every_k_and_training_moves_them(name):
    model, x = family(name)
    converted = odenets.convert(model, "lm").train()
    ks = coefficients(converted)
    before = [k.detach().clone() for k in ks]
    optimizer = torch.optim.SGD(ks, lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        converted(x).square().mean().backward()
        assert all(k.grad is not None and k.grad.abs().sum() > 0 for k in ks)
        optimizer.step()
    assert all(not torch.equal(k, b) for k, b in zip(ks, before))


@pytest.mark.parametrize("name", FAMILIES)
def test_state_dict_round_trips(name):
    model, x = family(name)
    trained = odenets.convert(model, "lm", k_init=(-0.5, -0.1))
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    fresh = odenets.convert(model, "lm")
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert fresh.state_dict().keys() == trained.state_dict().keys()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), trained(x), rtol=0, atol=0)
        assert not torch.allclose(fresh(x), model(x), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_compiled_gives_the_eager_result(name):
    model, x = family(name)
    converted = odenets.convert(model, "lm", k_init=(-0.5, -0.1))
    with torch.no_grad():
        eager = converted(x)
        compiled = torch.compile(converted)(x)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)


def lm_reference(u, steps, ks, act=lambda v: v):
    """u_{n+1} = act((1 - k_n) u_n + k_n u_{n-1} + f_n(u_n)) from the paper, with the
    authors' transition act(P(u_n) + f_n(u_n)) handing P(u_n) on as u_{n-1}; the first
    step (no u_{-1}) is forward Euler. ``steps``: (f, P or None); ``ks``: one per step
    (None where it takes no k)."""
    previous = None
    for (f, p), k in zip(steps, ks):
        if p is not None:
            previous, u = p(u), act(p(u) + f(u))
        elif k is None:
            previous, u = u, act(u + f(u))
        else:
            previous, u = u, act((1 - k) * u + k * previous + f(u))
    return u


def step_ks(converted: nn.Module) -> list:
    return [s.coefs["k"] if "k" in s.coefs else None
            for m in converted.modules() if isinstance(m, odenets.ODENet) for s in m.layers]


def test_lm_runs_across_the_stages_of_a_resnet():
    model, x = family("tv_resnet")
    converted = odenets.convert(model, "lm", k_init=(-0.6, 0.3))
    ks = step_ks(converted)
    blocks = [b for i in range(1, 5) for b in getattr(model, f"layer{i}")]
    assert len(ks) == len(blocks) == 5 and [k is None for k in ks] == [True, True, False, True, True]

    def branch(b):
        return lambda u: b.bn2(b.conv2(b.relu(b.bn1(b.conv1(u)))))

    with torch.no_grad():
        stem = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        u = lm_reference(stem, [(branch(b), b.downsample) for b in blocks], ks, torch.relu)
        expected = model.fc(torch.flatten(model.avgpool(u), 1))
        torch.testing.assert_close(converted(x), expected, rtol=1e-5, atol=1e-5)


def test_a_transformer_block_is_two_steps_and_lm_runs_across_them():
    model, x = family("timm_vit")
    converted = odenets.convert(model, "lm", k_init=(-0.6, 0.3))
    ks = step_ks(converted)
    assert len(ks) == 2 * len(model.blocks) and ks[0] is None and all(k is not None for k in ks[1:])
    steps = []
    for b in model.blocks:
        steps += [(lambda u, b=b: b.drop_path1(b.ls1(b.attn(b.norm1(u)))), None),
                  (lambda u, b=b: b.drop_path2(b.ls2(b.mlp(b.norm2(u)))), None)]
    with torch.no_grad():
        u = lm_reference(model.norm_pre(model._pos_embed(model.patch_embed(x))), steps, ks)
        expected = model.forward_head(model.norm(u))
        torch.testing.assert_close(converted(x), expected, rtol=1e-5, atol=1e-5)


def test_convnext_stages_restart_the_history_after_their_downsampling():
    model, _ = family("timm_convnext")
    converted = odenets.convert(model, "lm")
    nets = [m for m in converted.modules() if isinstance(m, odenets.ODENet)]
    assert [n.carry_in for n in nets] == [False] * 4
    assert [len(n.layers) for n in nets] == [1, 2, 2, 1]


@pytest.mark.parametrize("solver", ["lm", "euler"])
def test_post_norm_transformer_is_a_step_then_its_own_norm(solver):
    """norm_first=False: each sub-step is x -> norm(x + g(x)), the norm the step's
    activation, each step its own: the original's output, masks included."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False).train()
    with torch.no_grad():  # each norm its own weights: a stage using one norm for all would show
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    converted = odenets.convert(model, solver)
    nets = [m for m in converted.modules() if isinstance(m, odenets.ODENet)]
    assert len(nets) == 1 and len(nets[0].activation) == 6
    x = torch.randn(2, 5, 16)
    padding = torch.tensor([[False] * 5, [True, True, False, False, False]])
    torch.testing.assert_close(converted(x), model(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(converted(x, src_key_padding_mask=padding), model(x, src_key_padding_mask=padding),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("solver", ["lm", "euler"])
def test_converted_encoder_takes_masks_as_context(solver):
    """A causal mask and a padding mask reach every attention step: the converted
    encoder returns the original's output (its slow path: train mode, dropout off)."""
    torch.manual_seed(0)
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True,
                                                             norm_first=True), 3, norm=nn.LayerNorm(16),
                                  enable_nested_tensor=False).train()
    x = torch.randn(2, 5, 16)
    converted = odenets.convert(model, solver)
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    padding = torch.tensor([[False] * 5, [True, True, False, False, False]])
    for kwargs in (dict(mask=causal, is_causal=True), dict(src_key_padding_mask=padding),
                   dict(mask=causal, src_key_padding_mask=padding)):
        torch.testing.assert_close(converted(x, **kwargs), model(x, **kwargs), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="give the mask"):
        converted(x, is_causal=True)


@pytest.mark.parametrize("solver", ["lm", "euler"])
def test_converted_timm_vit_takes_an_attention_mask_as_context(solver):
    model, x = family("timm_vit")
    model.eval()
    converted = odenets.convert(model, solver)
    tokens = model.patch_embed.num_patches + model.num_prefix_tokens
    mask = torch.ones(tokens, tokens, dtype=torch.bool).tril()
    with torch.no_grad():
        want = model.forward_features(x, attn_mask=mask)
        torch.testing.assert_close(converted.forward_features(x, attn_mask=mask), want, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(want, model.forward_features(x))  # the mask matters


class MyBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(width, width), nn.Tanh())

    def forward(self, x):
        return x + self.body(x)


def test_unknown_block_names_its_type_and_registration_makes_it_convert():
    model = nn.Sequential(nn.Linear(3, 8), nn.Sequential(MyBlock(8), MyBlock(8)), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"test_convert\.MyBlock.*docs/any-network\.md"):
        odenets.convert(model)
    odenets.register_block(MyBlock, lambda block: [odenets.Residual(block.body)])
    x = torch.randn(4, 3)
    converted = odenets.convert(model, "lm")
    torch.testing.assert_close(converted(x), model(x))
    assert len(coefficients(converted)) == 1


def test_an_unknown_block_among_known_ones_is_named():
    model = ResNet(BasicBlock, [1, 1, 1, 1])
    model.layer2.append(MyOtherBlock())
    with pytest.raises(ValueError, match=r"'layer2'.*test_convert\.MyOtherBlock.*docs/any-network\.md"):
        odenets.convert(model)


class MyOtherBlock(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize("noise", ["stochastic_depth", "batch_drop"])
def test_stochastic_depth_decays_over_the_whole_network(noise):
    model, x = family("timm_vit")
    converted = odenets.convert(model, "lm", noise=noise, survival=0.5)
    net = next(m for m in converted.modules() if isinstance(m, odenets.ODENet))
    assert net.spec.noise == noise
    keep = [s.scheme.p for s in net.layers]
    assert keep == pytest.approx(net.spec.survival_probabilities(4)) and keep[-1] < keep[0]
    out = converted.train()(x)
    assert out.shape == model(x).shape and torch.isfinite(out).all()


def test_the_coefficients_take_the_models_dtype():
    model, x = family("tv_resnet")
    converted = odenets.convert(model.double(), "lm")
    assert all(k.dtype == torch.float64 for k in coefficients(converted))
    with torch.no_grad():
        torch.testing.assert_close(converted(x.double()), model(x.double()))


def test_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        odenets.convert("resnet18")
    with pytest.raises(ValueError, match="functions per step"):
        odenets.convert(ResNet(BasicBlock, [1, 1, 1, 1]), "revnet")
    with pytest.raises(ValueError, match="unknown solver"):
        odenets.convert(ResNet(BasicBlock, [1, 1, 1, 1]), "nope")
    with pytest.raises(TypeError, match="nn.Module subclass"):
        odenets.register_block(MyBlock(2), lambda b: [])
    with pytest.raises(TypeError, match="checkpoint must be True or False, got 'no'"):
        odenets.convert(ResNet(BasicBlock, [1, 1, 1, 1]), checkpoint="no")
    with pytest.raises(TypeError, match="return_trajectory must be True or False, got 1"):
        odenets.ODENet(nn.Linear(2, 2), return_trajectory=1)


def test_a_converted_network_is_named_as_such():
    converted = odenets.convert(ResNet(BasicBlock, [1, 1, 1, 1]))
    with pytest.raises(ValueError, match="ResNet is already converted: its residual stages are ODENets"):
        odenets.convert(converted, "euler")


def test_import_stays_light():
    code = "import sys, odenets; odenets.convert; print(sorted(m for m in sys.modules if m in ('timm', 'torchvision')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
