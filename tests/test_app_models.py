"""A model from its checkpoint: one loader for `odenets eval` and `odenets analyze`, the
sizes saved with the weights or read off them, unknown settings ignored alike; and the
helpers the commands share (CSV, the command line that reruns odenets)."""
import csv
import json
import shlex
import sys
from dataclasses import asdict

import pytest
import torch

from odenets import zoo
from odenets.app.commands import cli, train
from odenets.app.errors import CheckpointError
from odenets.app.run import checkpoint, metrics, models
from odenets.app.settings.config import Config


def save(path, model, config=None, **fields):
    """A checkpoint as `odenets train` writes it, for ``model`` trained on the digits."""
    config = config or asdict(Config(model="lm_resnet8", data="digits"))
    checkpoint.save(path, {"config": config, "model": model.state_dict(), "optimizer": {}, "scaler": {},
                           "epoch": 1, "batch": 0, "step": 10, "partial": {}, "history": [], "rng": [],
                           "world_size": 1, **fields})
    return path


def odenets(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def lm8():
    torch.manual_seed(0)
    return zoo.create("lm_resnet8", num_classes=7, in_chans=1).eval()


def test_from_checkpoint_rebuilds_the_saved_function(tmp_path, lm8):
    x = torch.randn(4, 1, 8, 8)
    for name, fields in (("sizes.pt", {"num_classes": 7, "in_chans": 1}), ("older.pt", {})):
        save(tmp_path / name, lm8, **fields)
        model, cfg, state = models.from_checkpoint(tmp_path / name)
        assert cfg.model == "lm_resnet8" and state["epoch"] == 1 and not model.training
        assert torch.equal(model(x), lm8(x))
    (tmp_path / "run").mkdir()
    save(tmp_path / "run" / "checkpoint.pt", lm8)
    assert models.from_checkpoint(tmp_path / "run")[2]["path"] == str(tmp_path / "run" / "checkpoint.pt")


def test_saved_sizes_come_before_the_weights(tmp_path, lm8):
    assert models.sizes(checkpoint.load(save(tmp_path / "a.pt", lm8))) == (7, 1)
    path = save(tmp_path / "b.pt", lm8, num_classes=5, in_chans=1)
    assert models.sizes(checkpoint.load(path)) == (5, 1)
    with pytest.raises(CheckpointError, match="b.pt: the saved model does not fit"):
        models.from_checkpoint(path)  # built for the 5 classes it claims, not the 7 its weights have
    with pytest.raises(CheckpointError, match="field 'in_chans' is not a positive integer"):
        checkpoint.load(save(tmp_path / "c.pt", lm8, num_classes=7, in_chans=0))
    bare = {"config": asdict(Config(model="lm_resnet8")), "model": {"w": torch.zeros(2)}}
    with pytest.raises(CheckpointError, match="saves neither num_classes and in_chans nor"):
        models.sizes({**bare, "path": "d.pt"})


def test_unknown_settings_are_ignored_by_eval_analyze_and_resume(tmp_path, capsys, lm8):
    config = {**asdict(Config(model="lm_resnet8", data="digits")), "setting_from_the_future": 1}
    path = save(tmp_path / "new.pt", zoo.create("lm_resnet8", in_chans=1), config, num_classes=10, in_chans=1)
    assert models.from_checkpoint(path)[1].model == "lm_resnet8"
    code, out, err = odenets(capsys, "eval", path, "--json")
    assert code == 0, err
    assert json.loads(out)["test_images"] == 450
    code, out, err = odenets(capsys, "analyze", "modified", path, "--json")
    assert code == 0, err
    assert Config().resume(config, given=set()).model == "lm_resnet8"
    with pytest.raises(CheckpointError, match="does not name its model"):
        models.from_checkpoint(save(tmp_path / "anon.pt", lm8, {**config, "model": None}))


def test_eval_checks_the_data_fits_the_model(tmp_path, capsys, lm8):
    path = save(tmp_path / "seven.pt", lm8, num_classes=7, in_chans=1)
    code, _, err = odenets(capsys, "eval", path)
    assert code == 2 and "holds a model for 7 classes and 1 input channels; the digits test set" in err
    assert "has 10 and 1" in err


@pytest.mark.parametrize("flag, value, message", [("--batch-size", 0, "--batch-size must be at least 1, got 0"),
                                                  ("--workers", -1, "--workers must be >= 0, got -1")])
def test_eval_rejects_bad_numbers(tmp_path, capsys, lm8, flag, value, message):
    code, _, err = odenets(capsys, "eval", save(tmp_path / "c.pt", lm8), flag, value)
    assert code == 2 and message in err


def test_write_csv_keeps_the_columns_in_order(tmp_path):
    metrics.write_csv(tmp_path / "t.csv", [{"b": 2, "a": 1, "extra": 3}, {"a": 4, "b": 5}], ("a", "b"))
    with open(tmp_path / "t.csv") as f:
        assert list(csv.reader(f)) == [["a", "b"], ["1", "2"], ["4", "5"]]
    assert not list(tmp_path.glob(".*"))  # written atomically: no temporary file left


@pytest.mark.parametrize("program, expect", [("/usr/bin/odenets", ["odenets"]),
                                             ("/x/odenets/__main__.py", [sys.executable, "-m", "odenets"])])
def test_commands_that_rerun_odenets(monkeypatch, program, expect):
    monkeypatch.setattr(sys, "argv", [program, "ablate", "--out", "a b"])
    assert shlex.split(train.command()) == expect + ["ablate", "--out", "a b"]
    assert shlex.split(train.resume_command(["train", "--resume", "old.pt", "--epochs", "3"], "new.pt")) == \
        expect + ["train", "--epochs", "3", "--resume", "new.pt"]
