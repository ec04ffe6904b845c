"""``--config FILE.toml``: a file's settings mean what the same flags mean, a flag on the
command line wins, a bad file gets one message naming it, and the run records the
resolved settings."""
import argparse
import json

import pytest

from odenets.app.commands import cli, train
from odenets.app.settings import config, settings_file


def parse(tmp_path, text, *argv):
    path = tmp_path / "study.toml"
    path.write_text(text)
    argv = [*argv[:1], "--config", str(path), *argv[1:]]
    return settings_file.merged(cli.parser().parse_args(argv))


def test_every_kind_of_setting_means_its_flag(tmp_path):
    args = parse(tmp_path, """
        models = ["resnet8", "resnet14"]
        solvers = "euler,lm"
        seeds = 3
        lr = 1
        weight_decay = 5e-4
        milestones = [0.25, 0.5]
        train_subset = 500
        amp = false
        quiet = true
        compile = true
        label = "a proxy"
        [opt]
        k_init = -0.05
        [paper_error]
        "resnet8/euler" = 8.75
        """, "ablate")
    same = cli.parser().parse_args(["ablate", "--models", "resnet8,resnet14", "--solvers", "euler,lm", "--seeds", "3",
                                    "--lr", "1", "--weight-decay", "5e-4", "--milestones", "0.25", "0.5",
                                    "--train-subset", "500", "--no-amp", "--quiet", "--compile", "--label", "a proxy",
                                    "--opt", "k_init=-0.05", "--paper-error", "resnet8/euler=8.75"])
    mine, theirs = vars(args), vars(same)
    assert mine.pop("config").endswith("study.toml") and theirs.pop("config") is None
    mine.pop("command_parser"), theirs.pop("command_parser")
    assert mine == theirs


def test_the_command_line_overrides_the_file(tmp_path):
    args = parse(tmp_path, "seeds = 5\nepochs = 3\nquiet = true\n[opt]\nk_init = 0.0\n", "ablate", "--seeds", "2",
                 "--opt", "k_init=-0.1")
    assert args.seeds == 2 and args.epochs == 3 and args.quiet is True
    assert args.opt == ["k_init=0.0", "k_init=-0.1"]  # later wins when the options are read
    args = parse(tmp_path, "seeds = 3\n", "ablate", "--seeds", "5")  # given equal to the default: still given
    assert args.seeds == 5


def test_a_model_given_replaces_the_files_models(tmp_path):
    args = parse(tmp_path, 'models = ["preact_resnet20", "preact_resnet56"]\nepochs = 2\n', "ablate", "--model",
                 "preact_resnet8")
    assert (args.model, args.models, args.epochs) == ("preact_resnet8", None, 2)
    args = parse(tmp_path, 'model = "resnet8"\n', "ablate", "--models", "resnet8,resnet14")
    assert (args.model, args.models) == (None, "resnet8,resnet14")


def test_a_table_takes_tomls_booleans_and_arrays(tmp_path):
    args = parse(tmp_path, "solver = \"lm\"\n[opt]\npreact = false\nk_bounds = [-0.9, 0.9]\nk_init = 0\n", "train")
    cfg, _ = config.from_args(args)
    assert cfg.options == {"preact": False}  # the model's; the scheme's go to its SolverSpec
    assert cfg.solver.name == "lm" and dict(cfg.solver.options)["k_init"] == 0
    assert list(cfg.solver.options["k_bounds"]) == [-0.9, 0.9]


def test_the_parser_reads_its_command_line_once(tmp_path, monkeypatch):
    path = tmp_path / "run.toml"
    path.write_text("epochs = 3\n")
    calls = []
    parse_known = argparse.ArgumentParser.parse_known_args

    def counted(self, args=None, namespace=None):
        calls.append(list(args or []))
        return parse_known(self, args, namespace)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", counted)
    monkeypatch.setattr(train, "run", lambda args: calls.append(args.epochs) and 0)
    argv = ["train", "--config", str(path), "--model", "resnet8"]
    assert cli.main(argv) == 0
    assert [c for c in calls[:-1] if "resnet8" in c] == [argv, argv[1:]]  # the program's parser, then the command's
    assert calls[-1] == 3  # the file's epochs reached the command


@pytest.mark.parametrize("text, expect", [
    ("sedes = 5", ["unknown setting 'sedes'", "seeds", "train_subset"]),
    ("seeds = 5.5", ["seeds takes an integer, not 5.5"]),
    ("lr = 'fast'", ["lr takes a number, not 'fast'"]),
    ("quiet = 1", ["quiet is a switch: give true or false"]),
    ("opt = 'k_init=0'", ["opt takes a table of KEY = VALUE"]),
    ("models = [['a']]", ["['a'] is not a string or a number"]),
    ("noise = 'loud'", ["argument --noise: invalid choice: 'loud'"]),
    ("seeds = ", ["is not valid TOML"]),
])
def test_a_bad_file_is_a_usage_error_naming_it(tmp_path, capsys, text, expect):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert cli.main(["ablate", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err
    for text in expect:
        assert text in err
    assert not (tmp_path / "out").exists()


def test_train_from_a_file(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(f'model = "resnet8"\nepochs = 3\ntrain_subset = 100\nquiet = true\nout = "{tmp_path / "run"}"\n')
    assert cli.main(["train", "--config", str(path), "--epochs", "1"]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["model"], saved["epochs"], saved["train_subset"]) == ("resnet8", 1, 100)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["history"][-1]["step"] == 2  # 100 images in batches of the recipe's 64
    assert cli.main(["train", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read the settings file" in capsys.readouterr().err
