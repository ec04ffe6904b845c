"""--tensorboard: event files read back with TensorBoard's own reader; tomli on Python 3.10."""
import importlib
import json
import sys

import pytest

from odenets.app.commands import cli
from odenets.app.settings import settings_file

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read(folder):
    events = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    return scalars, events


@pytest.mark.slow
def test_event_files_hold_the_runs_metrics_k_and_settings(tmp_path):
    out = tmp_path / "run"
    settings = tmp_path / "run.toml"
    settings.write_text("[tensorboard]\nevery = 4\n")
    assert cli.main(["train", "--config", str(settings), "--model", "resnet14", "--solver", "lm", "--epochs", "2",
                     "--train-subset", "160", "--batch-size", "20", "--out", str(out), "--quiet"]) == 0
    scalars, events = read(out / "tensorboard")
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # 8 steps an epoch, the training loss and accuracy of every 4 steps at the 4th one
    assert [s for s, _ in scalars["train/loss"]] == [4, 8, 12, 16]
    assert all(0 <= a <= 1 for _, a in scalars["train/acc"])
    for tag, key in (("test/acc", "test_acc"), ("test/loss", "test_loss"), ("lr", "lr"),
                     ("train/epoch_loss", "train_loss")):
        assert scalars[tag] == [(r["step"], pytest.approx(r[key], rel=1e-6)) for r in history], tag
    ks = history[-1]["k"]
    assert ks and {f"k/{name}" for name in ks} <= set(scalars)
    name, k = next(iter(ks.items()))
    assert scalars[f"k/{name}"][-1][1] == pytest.approx(k if not isinstance(k, list) else sum(k) / len(k), rel=1e-6)
    # the run's settings, as text
    text = events.Tensors("settings/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"solver": "lm"' in text and '"train_subset": 160' in text


def test_without_tensorboard_the_flag_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith("tensorboard.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard raises ImportError
    assert cli.main(["train", "--model", "resnet8", "--epochs", "1", "--tensorboard", "--out", str(tmp_path / "r"),
                     "--quiet"]) != 0
    assert "pip install -e '.[tensorboard]'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_settings_files_are_read_with_tomli_before_python_3_11(monkeypatch):
    """On 3.10, which has no tomllib, settings_file takes tomli (pyproject's conditional
    dependency), the same parser under its old name."""
    tomli = pytest.importorskip("tomli")
    monkeypatch.setattr(sys, "version_info", (3, 10, 0, "final", 0))
    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on 3.10: import tomllib fails
    try:
        assert importlib.reload(settings_file).tomllib is tomli
    finally:
        monkeypatch.undo()
        importlib.reload(settings_file)
    assert settings_file.tomllib.loads("a = [1, 2]") == {"a": [1, 2]}


def test_pyproject_asks_for_tomli_on_python_3_10_only():
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    tomli = [Requirement(r) for r in project["dependencies"] if r.startswith("tomli")]
    assert len(tomli) == 1 and project["requires-python"] == ">=3.10"
    marker = tomli[0].marker
    assert marker.evaluate({"python_version": "3.10"}) and not marker.evaluate({"python_version": "3.11"})


@pytest.mark.slow
def test_a_study_writes_one_event_folder_per_run(tmp_path):
    """``tensorboard --logdir <study>/runs`` finds every run of the study, each its own line."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    out = tmp_path / "study"
    assert cli.main(["ablate", "--model", "resnet8", "--solvers", "euler,lm", "--seeds", "1", "--epochs", "1",
                     "--train-subset", "40", "--batch-size", "20", "--tensorboard", "--out", str(out), "--quiet"]) == 0
    study = EventMultiplexer().AddRunsFromDirectory(str(out / "runs"))
    study.Reload()
    runs = sorted(study.Runs())
    assert len(runs) == 2 and all(run.endswith("/seed0/tensorboard") for run in runs), runs
    for run in runs:
        result = json.loads((out / "runs" / run.replace("/tensorboard", "") / "result.json").read_text())
        test_acc = [value for _, value in read(out / "runs" / run)[0]["test/acc"]]
        assert test_acc == [pytest.approx(result["test_acc"], rel=1e-6)]
