"""A NaN or infinite loss (or weights) stops the run with the epoch and step named,
before anything bad is saved: the last good checkpoint stays."""
import math
import re

import pytest
import torch

from odenets.app.commands import cli
from odenets.app.commands.train import fit
from odenets.app.errors import NonFiniteLoss
from odenets.app.run import checkpoint
from odenets.app.settings.config import Config


def config(out):
    return Config(model="resnet8", epochs=3, batch_size=128, lr=0.05, out=str(out), quiet=True)


def poison_at(step):
    """After optimizer step ``step``, put a NaN into the weights."""
    def hook(model, epoch, s):
        if s == step:
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = math.nan
    return hook


@pytest.mark.slow
def test_nan_loss_stops_naming_epoch_and_step_and_keeps_the_last_checkpoint(tmp_path):
    # 11 steps an epoch: poisoned after step 14, the loss of step 15 (epoch 2, batch 4) is NaN
    with pytest.raises(NonFiniteLoss) as err:
        fit(config(tmp_path), on_step=poison_at(14))
    message = str(err.value)
    assert "epoch 2, step 15" in message and "batch 4 of the epoch" in message
    assert f"last good checkpoint is {tmp_path / 'checkpoint.pt'} (after epoch 1, step 11)" in message
    state = checkpoint.load(tmp_path / "checkpoint.pt")
    assert (state["epoch"], state["step"]) == (1, 11)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.slow
def test_nan_weights_at_the_end_of_an_epoch_are_not_saved(tmp_path):
    # step 22 is the last of epoch 2: its loss was finite, but the weights it leaves are not
    with pytest.raises(NonFiniteLoss, match=r"weights became NaN or infinite by step 22 \(epoch 2\)"):
        fit(config(tmp_path), on_step=poison_at(22))
    assert checkpoint.load(tmp_path / "checkpoint.pt")["epoch"] == 1


def test_huge_learning_rate_from_the_command_line(tmp_path, capsys):
    code = cli.main(["train", "--model", "resnet8", "--epochs", "1", "--lr", "1e30", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert re.search(r"the loss became (nan|inf|-inf) at epoch 1, step \d+", err)
    assert "no checkpoint was written" in err
    assert not (tmp_path / "checkpoint.pt").exists()
