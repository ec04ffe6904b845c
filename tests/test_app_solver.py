"""The command line carries one solver specification (issue #9): a variant and --noise
that disagree are refused alike in train and ablate, and the label (lm+sd) names run
folders and what `odenets eval` reports."""
import json
from pathlib import Path

import pytest
import torch

from odenets.app.commands import cli
from odenets.app.run import models
from odenets.app.settings.config import Config, from_args

DATA = Path(__file__).with_name("data")


@pytest.mark.parametrize("command", [["train"], ["ablate", "--solvers", "euler,lm+sd", "--seeds", "1"]])
def test_a_variant_and_another_noise_are_refused_alike(command, tmp_path, capsys):
    args = command + (["--solver", "lm+sd"] if command == ["train"] else []) + [
        "--noise", "shake_shake", "--epochs", "1", "--out", str(tmp_path / "run")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "asks for noise 'stochastic_depth' and noise='shake_shake'" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_the_label_names_the_noise_and_the_default_folder():
    def out(*flags):
        cfg, _ = from_args(cli.parser().parse_args(["train", *flags]))
        return cfg.resolved()

    plain, sd, spelled = out("--solver", "lm"), out("--solver", "lm+sd"), out("--solver", "lm", "--noise",
                                                                                 "stochastic_depth")
    assert plain.out == "runs/digits-resnet20-lm-seed0" and sd.out == "runs/digits-resnet20-lm+sd-seed0"
    assert (spelled.solver, spelled.solver.label, spelled.out, spelled.options) == (sd.solver, "lm+sd", sd.out, {})
    assert out().label == "default"  # the model's own scheme, as it is
    assert out("--noise", "stochastic_depth").label == "euler+sd"  # resnet20's own, with the noise


def test_a_checkpoint_of_version_1_evaluates_as_it_did_and_reports_its_label(capsys):
    """tests/data: an `odenets train --model resnet14 --solver lm+sd` checkpoint of odenets
    0.1 (its config said solver 'lm' with the noise among the options) and the logits
    0.1 computed from it."""
    model, cfg, _ = models.from_checkpoint(DATA / "v1-resnet14-lm-sd-digits.pt")
    assert cfg.label == "lm+sd"
    saved = torch.load(DATA / "v1-resnet14-lm-sd-digits.logits.pt", weights_only=True)
    with torch.no_grad():
        torch.testing.assert_close(model(saved["x"]), saved["logits"], rtol=1e-5, atol=1e-5)
    assert Config(solver="lm", options={"noise": "stochastic_depth"}).resolved().solver.label == "lm+sd"


@pytest.mark.slow
def test_eval_reports_the_label(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--model", "resnet8", "--solver", "euler+sd", "--epochs", "1", "--batch-size", "256",
                     "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["solver"] == "euler+sd"


def test_a_version_1_lm_resnet_name_means_the_network_it_named_then(tmp_path):
    """0.1's lm_resnetN was He et al.'s resnetN under LM (today's is the authors' network)."""
    state = torch.load(DATA / "v1-resnet14-lm-sd-digits.pt", weights_only=True)
    state["config"] = {**state["config"], "model": "lm_resnet14", "solver": None}
    torch.save(state, tmp_path / "old.pt")
    model, cfg, _ = models.from_checkpoint(tmp_path / "old.pt")
    assert (cfg.model, cfg.label) == ("resnet14", "lm+sd")
    saved = torch.load(DATA / "v1-resnet14-lm-sd-digits.logits.pt", weights_only=True)
    with torch.no_grad():
        torch.testing.assert_close(model(saved["x"]), saved["logits"], rtol=1e-5, atol=1e-5)


def test_a_version_1_lm_run_resumes_with_its_optimizer_state_in_place(tmp_path):
    """0.1 trained the k_n in the weights' SGD group; today they have their own. Each
    parameter's momentum buffer must land on that parameter, the k_n's included."""
    from odenets.app.run import checkpoint, optimizer

    state = checkpoint.load(DATA / "v1-resnet14-lm-sd-digits.pt")
    cfg = Config(**state["config"]).resolved()
    model = models.build(cfg, 10, 1)
    sgd = optimizer.sgd(model, cfg)
    assert len(sgd.param_groups) == 2 and len(state["optimizer"]["param_groups"]) == 1
    mapped = checkpoint.optimizer_from_version_1(state["optimizer"], state["model"], model, sgd)
    sgd.load_state_dict(mapped)
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    v1_params = [k for k in state["model"] if not k.endswith(buffers)]  # 0.1's order, its SGD's indices
    params = dict(model.named_parameters())
    for old, new in [("stem.conv.weight", "stem.conv.weight"), ("stages.1.coefs.1.k", "stages.1.layers.1.coefs.k"),
                     ("stages.2.fns.1.conv2.weight", "stages.2.fns.1.conv2.weight")]:
        saved = state["optimizer"]["state"][v1_params.index(old)]["momentum_buffer"]
        torch.testing.assert_close(sgd.state[params[new]]["momentum_buffer"], saved, rtol=0, atol=0)
    assert all(g["weight_decay"] == cfg.weight_decay for g in sgd.param_groups)  # as 0.1 trained them
    assert cli.main(["train", "--resume", str(DATA / "v1-resnet14-lm-sd-digits.pt"), "--out", str(tmp_path / "run"),
                     "--quiet"]) == 0
