"""How k_n is trained and followed: its own optimizer group, its record in every
history row (JSON lines and CSV), and the figure of k_n against the epoch."""
import csv
import json

import pytest
import torch

from odenets import zoo
from odenets.app.commands import cli
from odenets.app.commands.train import fit
from odenets.app.run import checkpoint
from odenets.app.run.optimizer import scheme_coefficients, sgd
from odenets.app.settings.config import Config


def test_the_coefficients_have_their_own_group_with_the_base_rate_and_no_decay_by_default():
    model = zoo.create("lm_resnet14")
    ks = [c["k"] for s in model.stages for c in s.coefs if "k" in c]
    assert {id(p) for p in scheme_coefficients(model)} == {id(k) for k in ks} and len(ks) == 3
    weights, coefs = sgd(model, Config(lr=0.1, momentum=0.9, weight_decay=1e-4)).param_groups
    assert (weights["lr"], weights["weight_decay"], coefs["lr"], coefs["weight_decay"]) == (0.1, 1e-4, 0.1, 0.0)
    assert {id(p) for p in coefs["params"]} == {id(k) for k in ks}
    assert len(weights["params"]) + len(ks) == len(list(model.parameters()))
    chosen = sgd(model, Config(lr=0.1, momentum=0.9, weight_decay=1e-4, k_lr=0.01, k_weight_decay=1e-3))
    assert (chosen.param_groups[1]["lr"], chosen.param_groups[1]["weight_decay"]) == (0.01, 1e-3)
    assert len(sgd(zoo.create("preact_resnet14"), Config(lr=0.1, momentum=0.9, weight_decay=0)).param_groups) == 1


def test_weight_decay_reaches_k_only_through_its_own_setting():
    """With no gradient (lr on a zero loss), one SGD step moves k by -lr * wd * k."""
    model = zoo.create("lm_resnet14")
    ks = [p.detach().clone() for p in scheme_coefficients(model)]
    for wd, factor in ((None, 1.0), (0.5, 1 - 0.1 * 0.5)):
        model = zoo.create("lm_resnet14")
        with torch.no_grad():
            for p, k in zip(scheme_coefficients(model), ks):
                p.copy_(k)
        opt = sgd(model, Config(lr=0.1, momentum=0.0, weight_decay=0.3, k_weight_decay=wd))
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
        for p, k in zip(scheme_coefficients(model), ks):
            torch.testing.assert_close(p.detach(), k * factor)


@pytest.mark.slow
def test_history_records_k_each_epoch_and_analyze_draws_it(tmp_path, capsys):
    out = tmp_path / "run"
    seen = {}

    def remember(model, epoch, step):
        seen[epoch] = {f"stages.{i}.{n}": c["k"].item() for i, s in enumerate(model.stages)
                       for n, c in enumerate(s.coefs) if "k" in c}

    fit(Config(model="lm_resnet14", epochs=2, batch_size=128, k_lr=0.2, out=str(out), quiet=True), on_step=remember)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(r["k"]) for r in rows] == [["stages.0.1", "stages.1.1", "stages.2.1"]] * 2
    for row in rows:  # the k_n at the end of each epoch, as the model held them after its last step
        assert row["k"] == pytest.approx(seen[row["epoch"] - 1], rel=1e-6)
    assert rows[0]["k"] != rows[1]["k"]
    with open(out / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    assert float(table[1]["k[stages.2.1]"]) == pytest.approx(rows[1]["k"]["stages.2.1"])
    assert checkpoint.load(out / "checkpoint.pt")["history"] == rows

    figure = tmp_path / "k-epochs.png"
    assert cli.main(["analyze", "modified", str(out), "--plot-k-epochs", str(figure)]) == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()


def test_plot_k_history_rejects_a_history_without_k():
    from odenets.analysis import k_by_step, plot_k_history

    rows = [{"epoch": 1, "k": {"a.1": 0.1, "a.2": [0.0, 0.4]}}, {"epoch": 2, "k": {"a.1": 0.3, "a.2": [0.2, 0.4]}}]
    epochs, steps = k_by_step(rows)
    assert epochs == [1, 2] and steps == {"a.1": pytest.approx([0.1, 0.3]), "a.2": pytest.approx([0.2, 0.3])}
    with pytest.raises(ValueError, match="no k_n in the history of 'plain'"):
        plot_k_history({"lm": rows, "plain": [{"epoch": 1}]})


@pytest.mark.slow
def test_a_checkpoint_whose_optimizer_predates_the_groups_resumes_with_the_recipes_rate(tmp_path):
    out = tmp_path / "run"
    fit(Config(model="resnet8", epochs=1, batch_size=256, out=str(out), quiet=True))
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    for group in state["optimizer"]["param_groups"]:
        del group["base_lr"]  # as odenets wrote it before the coefficients had a group of their own
    torch.save(state, out / "checkpoint.pt")
    rows = fit(Config(model="resnet8", epochs=2, batch_size=256, out=str(out), quiet=True),
               checkpoint.load(out / "checkpoint.pt"))["history"]
    assert [r["lr"] for r in rows] == pytest.approx([0.05, 0.005])  # the digits recipe: 0.05, / 10 at epoch 2
