"""--resume continues a run to bit-identical weights, whether it stopped part-way
through an epoch or at its end; the settings of a resumed run come from its checkpoint."""
import os
import signal

import pytest
import torch

from odenets.app.commands import cli
from odenets.app.commands.train import fit
from odenets.app.errors import Interrupted
from odenets.app.run import checkpoint
from odenets.app.settings.config import Config


def config(out):
    # stochastic depth draws random numbers in every step: resuming must restore them
    return Config(model="resnet14", data="digits", solver="lm", options={"noise": "stochastic_depth"}, epochs=3,
                  batch_size=128, lr=0.05, seed=7, out=str(out), quiet=True)


def interrupt_at(step):
    def hook(model, epoch, s):
        if s == step:
            os.kill(os.getpid(), signal.SIGINT)
    return hook


def weights(path):
    return checkpoint.load(path)["model"]


def without_time(history):
    return [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in history]


@pytest.mark.slow
def test_resumed_run_ends_with_the_same_weights(tmp_path):
    whole = fit(config(tmp_path / "whole"))
    part = tmp_path / "part"
    # 1347 images / 128 = 11 batches an epoch: stop in epoch 1 after 5 steps ...
    with pytest.raises(Interrupted) as err:
        fit(config(part), on_step=interrupt_at(5))
    assert err.value.exit_code == 128 + signal.SIGINT and "part-way through epoch 1/3 (step 5)" in str(err.value)
    state = checkpoint.load(part / "checkpoint.pt")
    assert (state["epoch"], state["batch"], state["step"]) == (0, 5, 5)
    # ... then at the last step of epoch 2, before its evaluation ...
    with pytest.raises(Interrupted):
        fit(config(part), state, on_step=interrupt_at(22))
    state = checkpoint.load(part / "checkpoint.pt")
    assert (state["epoch"], state["batch"], state["step"]) == (1, 11, 22)
    # ... and run to the end.
    resumed = fit(config(part), state)
    a, b = weights(tmp_path / "whole" / "checkpoint.pt"), weights(part / "checkpoint.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert without_time(resumed["history"]) == without_time(whole["history"])


@pytest.mark.slow
def test_resume_from_the_command_line_takes_the_checkpoint_settings(tmp_path, capsys):
    out = tmp_path / "run"
    first = ["train", "--model", "resnet8", "--epochs", "2", "--lr", "0.02", "--batch-size", "128",
             "--out", str(out), "--quiet"]
    assert cli.main(first) == 0
    # a finished run resumed: nothing left to train, the same result
    assert cli.main(["train", "--resume", str(out / "checkpoint.pt"), "--quiet"]) == 0
    # a contradicting flag is refused with the saved value named
    assert cli.main(["train", "--resume", str(out), "--lr", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "lr=0.02" in err and "Traceback" not in err
    # --resume alone means the checkpoint in --out
    assert cli.main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    assert checkpoint.load(out / "checkpoint.pt")["config"]["lr"] == 0.02
