"""odenets train's step: the same update as the textbook step written out here, its
statistics handed back one step late (so the host never waits for the device), mixed
precision chosen by what the device computes in, and the compile and memory-format
options carried to torch."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from odenets import zoo
from odenets.app.commands import cli
from odenets.app.commands.train import fit
from odenets.app.errors import UsageError
from odenets.app.run import precision
from odenets.app.run.distributed import Context
from odenets.app.run.late_read import LateRead
from odenets.app.run.train_step import STATS, TrainStep
from odenets.app.settings import config
from odenets.app.settings.config import Config

CPU = torch.device("cpu")


def model_and_optimizer(seed=0, memory_format=torch.preserve_format):
    torch.manual_seed(seed)
    model = zoo.create("resnet8", num_classes=10).to(memory_format=memory_format)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def batches(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)) for _ in range(n)]


def test_late_read_hands_back_each_push_one_push_later():
    reads = LateRead(CPU)
    assert reads.push(torch.tensor([1.0, 2.0]), "a") is None
    first = reads.push(torch.tensor([3.0]), "b")
    assert (first.values(), first.tag) == ([1.0, 2.0], "a")
    last = reads.flush()
    assert (last.values(), last.tag) == ([3.0], "b")
    assert reads.flush() is None


def test_a_step_is_the_textbook_step_and_its_statistics_come_one_step_late():
    model, opt = model_and_optimizer()
    reference, ref_opt = model_and_optimizer()
    step = TrainStep(model, opt, Context(CPU))
    readings, expected = [], []
    for i, (x, y) in enumerate(batches(3)):
        readings.append(step(x, y, stop=(i == 1), tag=i))
        logits = reference(x)  # the step written out: forward, cross-entropy, backward, SGD
        loss = F.cross_entropy(logits, y)
        ref_opt.zero_grad()
        loss.backward()
        ref_opt.step()
        expected.append([loss.item() * len(y), float((logits.argmax(1) == y).sum()), float(len(y)), float(i == 1)])
    readings.append(step.flush())
    assert readings[0] is None and [r.tag for r in readings[1:]] == [0, 1, 2]
    assert len(STATS) == 4
    for got, want in zip((r.values() for r in readings[1:]), expected):
        assert got[1:] == want[1:] and math.isclose(got[0], want[0], rel_tol=1e-6)
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)


def test_channels_last_trains_the_same_model():
    plain, plain_opt = model_and_optimizer()
    last, last_opt = model_and_optimizer(memory_format=torch.channels_last)
    steps = TrainStep(plain, plain_opt, Context(CPU)), TrainStep(last, last_opt, Context(CPU), channels_last=True)
    for x, y in batches(2):
        for step in steps:
            step(x, y)
    conv = next(m for m in last.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(plain.state_dict().values(), last.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_amp_computes_in_bfloat16_where_the_device_can_else_float16_with_loss_scaling(monkeypatch):
    assert precision.dtype(CPU) == torch.bfloat16 and not precision.scaler(CPU, True).is_enabled()
    cuda = torch.device("cuda")
    for supported, dtype in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, s=supported: s)
        assert precision.dtype(cuda) == dtype
    assert precision.describe(cuda, True) == "float16 autocast with loss scaling"
    assert precision.describe(cuda, False) == "float32"


def test_compile_mode_reaches_torch_compile_and_turns_compile_on(tmp_path, monkeypatch):
    modes = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: modes.append(kw.get("mode")) or module)
    args = cli.parser().parse_args(["train", "--compile-mode", "reduce-overhead", "--out", str(tmp_path)])
    cfg, given = config.from_args(args)
    assert cfg.compile and cfg.compile_mode == "reduce-overhead" and {"compile", "compile_mode"} <= given
    fit(Config(model="resnet8", epochs=1, train_subset=200, compile=True, compile_mode="reduce-overhead",
               out=str(tmp_path / "run"), quiet=True))
    assert modes == ["reduce-overhead", "reduce-overhead"]  # the training net and the evaluated one
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["compile_mode"], saved["precision"]) == ("reduce-overhead", "float32")


def test_an_unknown_compile_mode_is_refused_naming_the_modes():
    with pytest.raises(UsageError, match="--compile-mode must be one of: default, reduce-overhead"):
        Config(compile=True, compile_mode="fast").check()
