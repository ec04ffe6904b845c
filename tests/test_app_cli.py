"""The command line's shape: `python -m odenets`, the subcommands and their flags, the
recipe defaults and how flags become a run's settings."""
import subprocess
import sys

import pytest

from odenets import zoo
from odenets.app.commands import cli
from odenets.app.settings.config import Config, from_args, parse_options
from odenets.app.settings.recipe import lr_at, recipe
from odenets.solvers import SolverSpec


def test_python_m_odenets_lists_the_subcommands():
    proc = subprocess.run([sys.executable, "-m", "odenets", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for command in ("train", "eval", "ablate", "analyze"):
        assert command in proc.stdout


@pytest.mark.parametrize("command", ["train", "ablate"])
def test_the_flags_users_expect(capsys, command):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--epochs", "--batch-size", "--lr", "--device", "--amp", "--compile", "--workers", "--out",
                 "--seed", "--download", "--data-dir", "--quiet", "--model", "--data", "--noise", "--opt"):
        assert flag in text, flag
    assert ("--resume" if command == "train" else "--solvers") in text


def test_no_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([])
    assert done.value.code == 2


def test_cifar_recipe_is_the_papers():
    r = recipe("cifar10", "resnet56")
    assert (r.epochs, r.batch_size, r.lr, r.momentum, r.weight_decay, r.milestones) == \
        (160, 128, 0.1, 0.9, 1e-4, (0.5, 0.75))
    assert recipe("cifar100", "resnext29_8x64d").weight_decay == 5e-4
    assert [lr_at(0.1, e, 160, r.milestones) for e in (0, 79, 80, 119, 120, 159)] == \
        pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert lr_at(0.1, 0, 1, r.milestones) == 0.1  # a one-epoch run keeps its rate


def test_the_weight_decay_follows_the_architecture_not_the_name(monkeypatch):
    from odenets.zoo import registry  # the models this test registers leave with it
    for table in ("_MODELS", "_CIFAR_WEIGHT_DECAY"):
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    # Xie et al. (2017) trained ResNeXt-29 on CIFAR with weight decay 5e-4, He et al. (2016) ResNets with 1e-4
    for name in ("resnext29_8x64d", "lm_resnext29_8x64d", "resnext29_16x64d", "lm_resnext29_16x64d"):
        assert recipe("cifar10", name).weight_decay == 5e-4, name
    for name in ("resnet56", "lm_resnet56", "preact_resnet56", "lm_resnet110_sd", "resnet164", "lm_resnet18"):
        assert recipe("cifar10", name).weight_decay == 1e-4, name
    assert recipe("imagefolder", "resnext29_8x64d", size_class="small").weight_decay == 5e-4
    # a user's architecture says its own, whatever its name
    zoo.register_model(lambda **kw: None, name="resnext_like_but_not_test_recipe", cifar_weight_decay=0.0)
    assert recipe("cifar10", "resnext_like_but_not_test_recipe").weight_decay == 0.0
    with pytest.raises(ValueError, match="cifar_weight_decay"):
        zoo.register_model(lambda **kw: None, name="bad_decay_test_recipe", cifar_weight_decay=-1.0)
    with pytest.raises(TypeError, match="cifar_weight_decay"):
        zoo.register_model(lambda **kw: None, name="bad_decay_test_recipe", cifar_weight_decay="5e-4")


def test_flags_become_settings():
    args = cli.parser().parse_args(["train", "--data", "cifar10", "--solver", "lm+sd", "--survival", "0.8",
                                    "--opt", "k_init=0.0", "--opt", "channels=[16, 32]", "--lr", "0.05"])
    cfg, given = from_args(args)
    assert cfg.solver == SolverSpec.parse("lm+sd", survival=0.8, k_init=0.0)  # the scheme's settings
    assert cfg.options == {"channels": [16, 32]}  # the model's (zoo.build's channels)
    assert (cfg.record()["solver"], cfg.record()["options"]) == ("lm+sd", {"channels": [16, 32], "k_init": 0.0,
                                                                          "survival": 0.8})
    assert {"data", "solver", "options", "lr"} <= given and "epochs" not in given
    full = cfg.resolved()
    assert (full.model, full.epochs, full.batch_size, full.lr) == ("resnet20", 160, 128, 0.05)
    assert full.out == "runs/cifar10-resnet20-lm+sd-seed0"
    assert parse_options(["name=plain text"]) == {"name": "plain text"}


def test_resumed_settings_come_from_the_checkpoint():
    saved = Config(model="resnet8", epochs=7, lr=0.02, workers=2, data_dir="/data").resolved()
    cfg = Config(workers=4).resume(vars(saved) | {"unknown_future_field": 1}, given={"workers"})
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.data_dir, cfg.workers) == ("resnet8", 7, 0.02, "/data", 4)


def test_the_application_api_is_importable_from_odenets_app_and_loaded_on_first_use():
    code = ("import sys, odenets.app as app; "
            "print(sorted(m for m in sys.modules if m.startswith(('odenets.app.commands', 'odenets.zoo')))); "
            "from odenets.app import Config, compare, fit; "
            "from odenets.app.settings.config import Config as C; from odenets.app.commands.train import fit as f; "
            "print(Config is C and fit is f and callable(compare))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True"]
    import odenets.app

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        odenets.app.nope
