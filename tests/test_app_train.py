"""`odenets train` and `odenets eval` end to end on the digits, on CPU."""
import csv
import json

import pytest
import torch

from odenets.app.commands import cli
from odenets.app.run import checkpoint


def odenets(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_train_writes_logs_checkpoint_and_result_and_learns(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = odenets(capsys, "train", "--model", "resnet14", "--solver", "lm", "--epochs", 3,
                                "--batch-size", 32, "--out", out)
    assert code == 0, err
    assert [line.split()[1] for line in stdout.splitlines() if line.startswith("epoch")] == ["1/3", "2/3", "3/3"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    with open(out / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == [1, 2, 3] and [int(r["epoch"]) for r in table] == [1, 2, 3]
    assert float(table[-1]["test_acc"]) == pytest.approx(rows[-1]["test_acc"])
    # lr 0.05 divided by 10 at round(0.5 * 3) = 2 and round(0.75 * 3) = 2
    assert [r["lr"] for r in rows] == pytest.approx([0.05, 0.05, 0.0005])
    assert rows[-1]["step"] == 3 * 43  # ceil(1347 / 32) steps per epoch
    result = json.loads((out / "result.json").read_text())
    assert result["test_acc"] == rows[-1]["test_acc"] > 0.5  # chance is 0.1
    assert result["config"]["solver"] == "lm" and result["parameters"] > 0
    state = checkpoint.load(out / "checkpoint.pt")
    assert state["epoch"] == 3 and state["batch"] == 0 and state["history"] == rows
    assert any(name.endswith(".k") or "coefs" in name for name in state["model"])  # LM's trainable k_n

    # eval recomputes the test accuracy from the checkpoint alone
    code, stdout, err = odenets(capsys, "eval", out, "--json")
    assert code == 0, err
    evaluated = json.loads(stdout)
    assert evaluated["test_acc"] == pytest.approx(result["test_acc"])
    assert evaluated["test_images"] == 450


@pytest.mark.slow
def test_amp_on_cpu_trains_in_bfloat16(tmp_path):
    from odenets.app.commands.train import fit
    from odenets.app.settings.config import Config

    seen = []  # the classifier's output dtype in training shows autocast at work
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: seen.append(o.dtype) if isinstance(m, torch.nn.Linear) and m.training else None)
    try:
        result = fit(Config(model="resnet8", epochs=1, batch_size=64, amp=True, out=str(tmp_path), quiet=True))
    finally:
        handle.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert result["test_acc"] > 0.3


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    code, _, err = odenets(capsys, "train", "--model", "resnet8", "--epochs", 1, "--out", tmp_path)
    assert code == 2 and "--resume" in err and "Traceback" not in err


@pytest.mark.slow
def test_compiled_training_saves_a_plain_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = odenets(capsys, "train", "--model", "resnet8", "--epochs", 1, "--batch-size", 256, "--compile",
                           "--out", out, "--quiet")
    assert code == 0, err
    state = checkpoint.load(out / "checkpoint.pt")
    assert not any(k.startswith("_orig_mod") for k in state["model"])
    code, stdout, err = odenets(capsys, "eval", out, "--json")  # evaluated uncompiled
    assert code == 0 and json.loads(stdout)["test_acc"] == pytest.approx(
        json.loads((out / "result.json").read_text())["test_acc"])
