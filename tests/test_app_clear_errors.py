"""Each of these ends in one message saying what was wrong, exit status 2, and no
litter: unsafe pickles, weights that do not fit, hand-edited or damaged files, seeds
beyond 64 bits, images too small, a read-only or full disk, NaN weights, and the
settings that make SGD diverge."""
import errno
import json
import math
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from odenets import files
from odenets.app.commands import cli
from odenets.app.commands.train import divergence, fit
from odenets.app.errors import NonFiniteLoss
from odenets.app.run import checkpoint
from odenets.app.settings.config import Config


def odenets(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def edited(trained, tmp_path, edit):
    state = torch.load(trained, weights_only=True)
    edit(state)
    path = tmp_path / "edited.pt"
    torch.save(state, path)
    return path


class Shell:
    def __reduce__(self):
        return os.system, ("echo should-not-run",)


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_a_malicious_pickle_is_refused_naming_the_class(tmp_path, capsys, command):
    path = tmp_path / "evil.pt"
    torch.save({"format": "odenets-checkpoint", "payload": Shell()}, path)
    argv = ["eval", path] if command == "eval" else ["train", "--resume", path]
    code, err = odenets(capsys, *argv)
    assert code == 2 and f"{path} is not a readable checkpoint (it holds a pickled {os.name}.system" in err


@pytest.mark.parametrize("edit, expect", [
    (lambda s: s["model"].pop("stem.conv.weight"), "it lacks 'stem.conv.weight'"),
    (lambda s: s["model"].update(extra=torch.zeros(1)), "it has 'extra', which this model does not"),
    (lambda s: s["model"].update({"head.fc.bias": torch.zeros(7)}), "head.fc.bias has shape (7,) there, (10,) here"),
])
def test_weights_that_do_not_fit_name_the_first_difference(trained, tmp_path, capsys, edit, expect):
    code, err = odenets(capsys, "eval", edited(trained, tmp_path, edit))
    assert code == 2 and f"the saved model does not fit this run's model: {expect}" in err


def test_an_optimizer_state_that_does_not_fit_is_named(trained, tmp_path, capsys):
    def edit(state):
        state["optimizer"]["state"][0]["momentum_buffer"] = torch.zeros(3)

    code, err = odenets(capsys, "train", "--resume", edited(trained, tmp_path, edit), "--out", tmp_path / "new")
    assert code == 2 and "the momentum_buffer of parameter 0 has shape (3,) there" in err


@pytest.mark.parametrize("edit, expect", [
    (lambda s: s["config"].update(epochs="abc"), "has epochs='abc', which is not an integer, or None"),
    (lambda s: s["config"].update(options=[1, 2]), "has options=[1, 2], which is not a dict"),
    (lambda s: s["config"].update(milestones="abc"), "has milestones='abc', which is not a list of numbers"),
    (lambda s: s["config"].update(seed=-3), "--seed must be >= 0, got -3"),
    (lambda s: s.update(epoch=-5), "field 'epoch' is -5, less than 0"),
])
@pytest.mark.parametrize("command", ["eval", "resume"])
def test_a_hand_edited_checkpoint_names_the_field(trained, tmp_path, capsys, edit, expect, command):
    path = edited(trained, tmp_path, edit)
    argv = ["eval", path] if command == "eval" else ["train", "--resume", path, "--out", tmp_path / "new"]
    code, err = odenets(capsys, *argv)
    assert code == 2 and str(path) in err and expect in err
    assert not (tmp_path / "new").exists()


def test_nan_weights_are_refused(trained, tmp_path, capsys):
    path = edited(trained, tmp_path, lambda s: s["model"]["head.fc.weight"].view(-1).__setitem__(0, math.nan))
    code, err = odenets(capsys, "eval", path)
    assert code == 2 and "holds NaN or infinite weights (first in head.fc.weight)" in err


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    argv = ["ablate", "--jobs", "1", "--model", "resnet8", "--epochs", "1", "--batch-size", "256", "--solvers", "euler", "--seeds",
            "1", "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0
    return out, argv


@pytest.mark.parametrize("damage, expect", [
    (lambda text: text[: len(text) // 2], "it is not JSON"),
    (lambda text: "[1, 2]", "it holds a list, not a dict"),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "test_acc"}),
     "field 'test_acc' is missing or not a number"),
    (lambda text: json.dumps({**json.loads(text), "history": [{"test_acc": "high"}]}),
     "history[0] field 'test_acc' is missing or not a number"),
    (lambda text: json.dumps({**json.loads(text), "config": {**json.loads(text)["config"], "epochs": "1"}}),
     "has epochs='1', which is not an integer"),
    (lambda text: json.dumps({**json.loads(text), "test_acc": 5.0}), "test_acc is 5.0, not an accuracy between 0"),
    (lambda text: json.dumps({**json.loads(text), "test_acc": math.nan}), "test_acc is nan, not an accuracy"),
    (lambda text: json.dumps({**json.loads(text), "test_loss": math.inf}), "test_loss is inf, not a finite number"),
    (lambda text: json.dumps({**json.loads(text), "test_acc": 0.5}), "its history does not end in its result"),
    (lambda text: json.dumps({**json.loads(text), "test_acc": 0.5,
                              "history": [{**row, "test_acc": 0.5} for row in json.loads(text)["history"]]}),
     "the run's last line of metrics.jsonl (epoch 1, test_acc"),
])
def test_a_damaged_ablation_result_names_the_field(ablation, capsys, damage, expect):
    out, argv = ablation
    result = out / "runs" / "euler" / "seed0" / "result.json"
    good = result.read_text()
    try:
        result.write_text(damage(good))
        code, err = odenets(capsys, *argv)
        assert code == 2 and f"{result} is damaged" in err and expect in err and "Traceback" not in err
    finally:
        result.write_text(good)


def test_a_seed_beyond_64_bits(tmp_path, capsys):
    code, err = odenets(capsys, "train", "--seed", 2**64, "--out", tmp_path / "run")
    assert code == 2 and "--seed must be below 2**64" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name, value", [("momentum", "inf"), ("weight-decay", "inf"), ("lr", "nan")])
def test_non_finite_hyper_parameters_are_refused(tmp_path, capsys, name, value):
    code, err = odenets(capsys, "train", f"--{name}", value, "--out", tmp_path / "run")
    assert code == 2 and f"--{name} must be a" in err and "finite" in err


def test_cifar_images_smaller_than_32x32(tmp_path, capsys):
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (tmp_path / "cifar" / split / c).mkdir(parents=True)
            Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "cifar" / split / c / "0.png")
    code, err = odenets(capsys, "train", "--data", "cifar10", "--data-dir", tmp_path / "cifar", "--model", "resnet8",
                        "--epochs", 1, "--out", tmp_path / "run")
    assert code == 2 and (f"CIFAR10 images are 32x32, but those in {tmp_path / 'cifar' / 'train'} are 10x10; for "
                          "other images use --data imagefolder") in err
    assert not (tmp_path / "run").exists()


def test_a_read_only_file_system_reports_the_first_error(tmp_path, monkeypatch):
    def refuse(what):
        def fail(*args, **kwargs):
            raise OSError(errno.EROFS, f"Read-only file system ({what})")
        return fail

    with monkeypatch.context() as m:
        m.setattr(files, "open", refuse("open"), raising=False)
        m.setattr("pathlib.Path.unlink", refuse("unlink"))  # as on a read-only file system, for a missing file too
        with pytest.raises(OSError) as err:
            files.atomic_write(tmp_path / "x.json", lambda f: f.write("{}"), "w")
    assert err.value.errno == errno.EROFS and "(open)" in str(err.value)


def test_a_full_disk_says_so_and_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    real, writes = checkpoint.atomic_write, []

    def fill_up(path, write, mode="wb"):
        writes.append(path)
        if len(writes) < 2:
            return real(path, write, mode)

        def full(f):
            f.write(b"part of it")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, full, mode)

    monkeypatch.setattr(checkpoint, "atomic_write", fill_up)
    out = tmp_path / "run"
    code, err = odenets(capsys, "train", "--model", "resnet8", "--epochs", 2, "--batch-size", 256, "--out", out,
                        "--quiet")
    assert code == 2
    assert re.search(rf"cannot write the checkpoint in {re.escape(str(out))}: the disk is full; stopped: the last "
                     rf"good checkpoint, {re.escape(str(out / 'checkpoint.pt'))} \(after epoch 1, step 6\), is "
                     "intact", err)
    assert checkpoint.load(out / "checkpoint.pt")["epoch"] == 1
    assert not list(out.glob(".*.tmp"))


def config(out, **settings):
    return Config(model="resnet8", epochs=2, batch_size=256, lr=0.05, out=str(out), quiet=True, **settings)


@pytest.mark.parametrize("settings, named, not_named", [
    (dict(momentum=1.5), "--momentum 1.5 is not below 1", "--lr"),
    (dict(momentum=0.9, weight_decay=100.0), "--lr 0.05 times --weight-decay 100", "--momentum"),
    (dict(momentum=0.9, weight_decay=5e-4), "A smaller --lr may help", "--momentum"),
])
def test_the_nan_loss_message_names_the_settings_that_diverge(tmp_path, settings, named, not_named):
    advice = divergence(config(tmp_path, **settings).resolved())
    assert named in advice and not_named not in advice


def test_a_diverging_weight_decay_is_named_when_the_loss_becomes_nan(tmp_path):
    with pytest.raises(NonFiniteLoss) as err:
        fit(Config(model="resnet8", epochs=5, batch_size=256, lr=0.05, weight_decay=2000.0, out=str(tmp_path),
                   quiet=True))
    assert "--weight-decay 2000" in str(err.value) and "smaller --lr" not in str(err.value)
