"""`odenets ablate` end to end on the digits: the table, its statistics, files and
figures, several models in one study, and reruns that reuse finished runs and resume
interrupted ones."""
import csv
import json
import os
import signal

import pytest
import torch
from PIL import Image
from scipy import stats

from odenets import ODENet, zoo
from odenets.app.commands import cli
from odenets.app.commands.ablate import _config
from odenets.app.commands.train import fit
from odenets.app.errors import Interrupted
from odenets.app.settings.config import Config

ARGS = ["ablate", "--jobs", "1", "--model", "resnet8", "--solvers", "euler,rk4", "--seeds", "2", "--epochs", "2",
        "--batch-size", "128"]


def expected_evaluations(model):
    """f-evaluations per forward read off the architecture: each step of each ODENet
    evaluates its f scheme.evals times, a shape-changing step (with a shortcut) once."""
    return sum(1 if step.transition else net.scheme.evals
               for net in model.modules() if isinstance(net, ODENet) for step in net.layers)


@pytest.mark.slow
def test_ablate_table_files_and_figure(tmp_path, capsys):
    out = tmp_path / "ablation"
    # an earlier, interrupted ablation left euler seed 0 part-way through its first epoch
    first = _config(Config(epochs=2, batch_size=128), "resnet8", "euler", 0, out / "runs" / "euler")
    with pytest.raises(Interrupted):
        fit(first, on_step=lambda model, epoch, step: step == 3 and os.kill(os.getpid(), signal.SIGINT))

    assert cli.main(ARGS + ["--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "solver" in stdout and "f-evals" in stdout and "(reused)" not in stdout
    with open(out / "ablation.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == [r["solver"] for r in rows] == ["euler", "rk4"]
    for row in rows:
        model = zoo.create("resnet8", in_chans=1, solver=row["solver"])
        assert int(row["evaluations"]) == expected_evaluations(model)
        assert int(row["parameters"]) == sum(p.numel() for p in model.parameters())
        assert float(row["acc_mean"]) > 30 and float(row["acc_std"]) >= 0 and int(row["seeds"]) == 2
    assert int(rows[1]["evaluations"]) > int(rows[0]["evaluations"])  # rk4 evaluates f 4 times a step
    report = json.loads((out / "ablation.json").read_text())
    assert [len(report["runs"][s]) for s in ("euler", "rk4")] == [2, 2]
    assert all(len(run["history"]) == 2 for runs in report["runs"].values() for run in runs)
    seeds = [run["config"]["seed"] for run in report["runs"]["rk4"]]
    assert seeds == [0, 1]
    accs = [100 * run["test_acc"] for run in report["runs"]["euler"]]
    assert float(rows[0]["acc_mean"]) == pytest.approx(sum(accs) / 2)
    assert float(rows[0]["err_mean"]) == pytest.approx(100 - sum(accs) / 2)
    # the comparison with the baseline, recomputed from the runs: a t-test paired by seed
    base, rk4 = report["table"]
    assert base["verdict"] == "baseline" and base["diff_mean"] == 0 and base["p_value"] is None
    d = [100 * (a["test_acc"] - b["test_acc"]) for a, b in zip(report["runs"]["rk4"], report["runs"]["euler"])]
    assert rk4["paired"] is True
    if d[0] != d[1]:
        t = stats.ttest_1samp(d, 0.0)
        half = stats.t.ppf(0.975, 1) * stats.sem(d)
        assert rk4["p_value"] == pytest.approx(t.pvalue)
        assert (rk4["ci_low"], rk4["ci_high"]) == pytest.approx((sum(d) / 2 - half, sum(d) / 2 + half))
        assert rk4["verdict"] == ("no difference detectable" if t.pvalue >= 0.05 else "better" if sum(d) > 0
                                  else "worse")
    else:  # both seeds moved by the same amount: the interval shrinks to it
        assert rk4["ci_low"] == pytest.approx(d[0]) == rk4["ci_high"]
    assert rk4["diff_mean"] == pytest.approx(sum(d) / 2) and rk4["baseline"] == "euler"
    assert "diff (points) [95% CI]" in stdout and "paired by seed" in stdout
    for figure in ("ablation.png", "ablation-params.png"):
        with Image.open(out / figure) as image:
            assert image.format == "PNG" and image.size[0] > 800
    # the interrupted run was resumed (a fresh start would refuse its checkpoint) and finished
    resumed = json.loads((out / "runs" / "euler" / "seed0" / "result.json").read_text())
    assert resumed["history"][-1]["step"] == 2 * 11

    # a rerun reuses every finished run and prints the same table
    assert cli.main(ARGS + ["--out", str(out)]) == 0
    again = capsys.readouterr().out
    assert again.count("(reused)") == 4
    assert stdout.split("f-evals")[1] == again.split("f-evals")[1]
    # the same folder with other settings is refused
    assert cli.main(ARGS[:-4] + ["--epochs", "3", "--batch-size", "128", "--out", str(out)]) == 2
    assert "other settings" in capsys.readouterr().err


@pytest.mark.slow
def test_several_models_from_a_settings_file(tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text('models = ["resnet8", "resnet14"]\nsolvers = ["euler", "lm"]\nseeds = 2\nepochs = 3\n'
                     'batch_size = 128\nquiet = true\n')
    out = tmp_path / "grid"
    assert cli.main(["ablate", "--config", str(study), "--epochs", "1", "--out", str(out)]) == 0
    report = json.loads((out / "ablation.json").read_text())
    rows = {r["name"]: r for r in report["table"]}
    assert list(rows) == ["resnet8/euler", "resnet8/lm", "resnet14/euler", "resnet14/lm"]
    assert {r["name"]: r["baseline"] for r in rows.values()} == {  # each model against its own euler row
        "resnet8/euler": "resnet8/euler", "resnet8/lm": "resnet8/euler",
        "resnet14/euler": "resnet14/euler", "resnet14/lm": "resnet14/euler"}
    assert all(len(r["history"]) == 1 for runs in report["runs"].values() for r in runs)  # the flag won
    assert (out / "runs" / "resnet14" / "lm" / "seed1" / "result.json").exists()
    # lm_resnet8 has no k_n (one block per stage) and computes resnet8's function: at the same
    # seed the two runs agree exactly, and the paired comparison sees no difference at all
    assert rows["resnet8/lm"]["diff_mean"] == 0 and rows["resnet8/lm"]["p_value"] == 1.0
    assert rows["resnet8/lm"]["paired"] is True and rows["resnet8/lm"]["verdict"] == "no difference detectable"
    assert rows["resnet14/lm"]["parameters"] == rows["resnet14/euler"]["parameters"] + 3  # one k per later block
    assert report["settings"]["models"] == ["resnet8", "resnet14"] and report["settings"]["run"]["epochs"] == 1
    for figure in ("ablation.png", "ablation-params.png"):
        assert (out / figure).stat().st_size > 10_000

    # one baseline row for all: a rerun reuses every run
    assert cli.main(["ablate", "--config", str(study), "--epochs", "1", "--out", str(out),
                     "--baseline", "resnet14/euler"]) == 0
    assert "model/solver" in capsys.readouterr().out
    rows = json.loads((out / "ablation.json").read_text())["table"]
    assert {r["baseline"] for r in rows} == {"resnet14/euler"}
    assert rows[0]["diff_mean"] == pytest.approx(rows[0]["acc_mean"] - rows[2]["acc_mean"])
