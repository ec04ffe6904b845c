"""``--resume A --out B``: B must hold nothing; the run is then copied into B whole
(checkpoint, metrics, result), so B never points at a checkpoint it lacks."""
import json

import pytest
import torch

from odenets.app.commands import cli
from odenets.app.run import checkpoint


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    assert cli.main(["train", "--model", "resnet8", "--epochs", "1", "--batch-size", "256", "--out", str(out),
                     "--quiet"]) == 0
    return out


def test_a_folder_holding_another_run_is_refused_and_left_alone(tmp_path, capsys, finished):
    other = tmp_path / "other"
    other.mkdir()
    (other / "result.json").write_text('{"mine": 1}')
    code = cli.main(["train", "--resume", str(finished), "--out", str(other), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot resume {finished / 'checkpoint.pt'} into {other}" in err and "result.json" in err
    assert sorted(p.name for p in other.iterdir()) == ["result.json"]
    assert (other / "result.json").read_text() == '{"mine": 1}'


def test_a_finished_run_resumed_into_a_new_folder_is_a_complete_copy(tmp_path, finished):
    new = tmp_path / "new"
    assert cli.main(["train", "--resume", str(finished), "--out", str(new), "--quiet"]) == 0
    result = json.loads((new / "result.json").read_text())
    assert result["checkpoint"] == str(new / "checkpoint.pt")
    copy, original = checkpoint.load(new / "checkpoint.pt"), checkpoint.load(finished / "checkpoint.pt")
    assert (copy["epoch"], copy["step"], copy["history"]) == (original["epoch"], original["step"],
                                                              original["history"])
    assert all(torch.equal(copy["model"][k], v) for k, v in original["model"].items())
    assert (new / "metrics.csv").read_text() == (finished / "metrics.csv").read_text()
    assert json.loads((new / "config.json").read_text())["out"] == str(new)
    # and the copy resumes in its own folder, as any run
    assert cli.main(["train", "--resume", str(new), "--quiet"]) == 0
