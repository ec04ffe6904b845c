"""The experiment files under experiments/: they hold the studies the docs describe,
and they run (with the models swapped for a small one, on a few CIFAR-10 images)."""
import json
import shutil
from pathlib import Path

import pytest

from odenets.app.commands import cli
from odenets.app.settings import settings_file

ROOT = Path(__file__).resolve().parents[1]
PAPER, PROXY = ROOT / "experiments" / "cifar10-paper.toml", ROOT / "experiments" / "cifar10-proxy.toml"
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg"

# CIFAR-10 test error (%), as the paper (Lu et al. 2018) compares: ResNet-20/32/44/56/110
# from He et al. (2016), LM-ResNet-20/32/44/56/110 its own
PUBLISHED = {"euler": (8.75, 7.51, 7.17, 6.97, 6.43), "lm": (8.33, 7.18, 6.66, 6.31, 6.16)}


def ablate_args(path, *argv):
    return settings_file.merged(cli.parser().parse_args(["ablate", "--config", str(path), *argv]))


def test_the_paper_study_file():
    args = ablate_args(PAPER)
    depths = (20, 32, 44, 56, 110)
    assert args.models.split(",") == [f"preact_resnet{d}" for d in depths]
    assert (args.solvers, args.seeds, args.baseline, args.data) == ("euler,lm", 5, "euler", "cifar10")
    assert (args.epochs, args.batch_size, args.lr, args.momentum, args.weight_decay, args.milestones) == \
        (160, 128, 0.1, 0.9, 1e-4, [0.5, 0.75])
    expected = {f"preact_resnet{d}/{solver}={error}" for solver, errors in PUBLISHED.items()
                for d, error in zip(depths, errors)}
    assert set(args.paper_error) == expected
    # He et al.'s errors are of their post-activation ResNets; the euler rows are pre-activation networks
    assert "post-activation" in args.label and "preact_resnetN/euler" in args.label


def test_the_proxy_file_is_labelled_a_proxy():
    args = ablate_args(PROXY)
    assert "PROXY" in args.label and args.models == "preact_resnet20,preact_resnet56"
    assert args.solvers == "euler,lm" and args.train_subset and args.epochs < 10


def cifar_sample(root: Path, train: int, test: int) -> Path:
    """An image-folder copy (links) of the first images of each CIFAR-10 class."""
    for split, n in (("train", train), ("test", test)):
        for folder in sorted((CIFAR / split).iterdir()):
            (root / split / folder.name).mkdir(parents=True)
            for image in sorted(folder.iterdir())[:n]:
                (root / split / folder.name / image.name).symlink_to(image)
    return root


@pytest.mark.slow
@pytest.mark.skipif(not (CIFAR / "train").is_dir(), reason=f"no CIFAR-10 image folder at {CIFAR}")
def test_both_files_run_on_a_cifar10_sample(tmp_path, capsys):
    data = cifar_sample(tmp_path / "cifar", train=20, test=10)
    # the paper's study, its first epoch, with resnet8 for the preact_resnetN
    out = tmp_path / "paper"
    assert cli.main(["ablate", "--config", str(PAPER), "--data-dir", str(data), "--models", "resnet8", "--epochs", "1",
                     "--seeds", "2", "--paper-error", "euler=8.75", "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "The paper's CIFAR-10 study" in captured.out and "paper err (%)" in captured.out
    assert "preact_resnet20/euler" in captured.err  # the file's numbers for rows replaced by the flags
    report = json.loads((out / "ablation.json").read_text())
    assert [r["name"] for r in report["table"]] == ["euler", "lm"] and report["table"][0]["paper_error"] == 8.75
    run = report["runs"]["lm"][1]
    assert (run["config"]["model"], run["config"]["solver"], run["config"]["seed"]) == ("resnet8", "lm", 1)
    assert run["history"][0]["lr"] == 0.1 and run["history"][0]["step"] == 2  # 200 images, batch 128
    assert report["settings"]["config"] == str(PAPER) and report["settings"]["seeds"] == 2

    # the proxy, on a stratified subset of the sample, labelled a proxy wherever it prints
    out = tmp_path / "proxy"
    assert cli.main(["ablate", "--config", str(PROXY), "--data-dir", str(data), "--models", "resnet8", "--epochs", "1",
                     "--seeds", "2", "--train-subset", "50", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("PROXY") and "\nPROXY" in printed  # first line, and above the table
    report = json.loads((out / "ablation.json").read_text())
    assert report["settings"]["label"].startswith("PROXY") and report["settings"]["run"]["train_subset"] == 50
    assert all(r["config"]["train_subset"] == 50 and r["history"][0]["step"] == 1 for r in report["runs"]["euler"])
    shutil.rmtree(data)
