"""Every bad input gets one clear message and exit status 2, never a traceback: unknown
names (with the choices listed), a missing data folder, unreadable images, corrupt,
foreign or mismatched checkpoints."""
import numpy as np
import pytest
import torch
from PIL import Image

from odenets import zoo
from odenets.app.commands import cli


def odenets(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("argv, expect", [
    (["train", "--model", "resnet9000"], ["unknown model 'resnet9000'", "resnet20", "lm_resnet56"]),
    (["train", "--data", "mnist"], ["unknown data set 'mnist'", "digits", "cifar10", "imagefolder"]),
    (["train", "--solver", "rk5"], ["unknown solver 'rk5'", "rk4", "midpoint", "polynet"]),
    (["train", "--solver", "lm+xx"], ["unknown solver variant +xx", "+sd"]),
    (["ablate", "--solvers", "euler,nope"], ["unknown solver 'nope'", "euler"]),
    (["ablate", "--models", "resnet8,resnet14,resnet8"], ["--models lists resnet8 more than once"]),
    (["ablate", "--model", "resnet8", "--models", "resnet14"], ["give --model or --models, not both"]),
    (["ablate", "--models", "resnet8,nope"], ["unknown model 'nope'", "resnet20"]),
    (["ablate", "--solvers", "euler,lm", "--baseline", "rk4"], ["--baseline 'rk4' is neither", "euler, lm"]),
    (["ablate", "--solvers", "euler", "--paper-error", "euler:8.75"], ["--paper-error takes NAME=ERROR"]),
    (["train", "--train-subset", "0"], ["--train-subset must be at least 1, got 0"]),
    (["train", "--model", "resnet8", "--train-subset", "5", "--epochs", "1"], ["--train-subset must lie between 10"]),
    (["train", "--opt", "k_init"], ["--opt takes KEY=VALUE"]),
    (["train", "--model", "resnet8", "--opt", "bogus=1", "--epochs", "1"], ["cannot build resnet8", "bogus"]),
    (["train", "--batch-size", "0"], ["--batch-size must be at least 1"]),
    (["train", "--seed", "-1"], ["--seed must be >= 0, got -1"]),
    (["ablate", "--seed", "-1", "--solvers", "euler"], ["--seed must be >= 0, got -1"]),
    (["ablate", f"--seed={2**64 - 1}", "--seeds", "2", "--solvers", "euler"],
     [f"--seed {2**64 - 1} with --seeds 2 reaches seed {2**64}", f"give --seed at most {2**64 - 2}"]),
    (["ablate", "--shard", "", "--solvers", "euler"], ["--shard takes I/N", "got ''"]),
    (["train", "--momentum", "-0.9"], ["--momentum must be >= 0, got -0.9"]),
    (["train", "--weight-decay=-1e-4"], ["--weight-decay must be >= 0, got -0.0001"]),
    (["train", "--milestones", "0.5", "1.5"], ["--milestones are fractions of the epochs, each in (0, 1]"]),
    (["train", "--milestones", "0"], ["--milestones are fractions of the epochs, each in (0, 1], got [0.0]"]),
    (["train", "--device", "nonsense"], ["--device 'nonsense' is not a device"]),
    (["train", "--data", "cifar10", "--data-dir", "/nonexistent/cifar"],
     ["no CIFAR10 found in /nonexistent/cifar", "cifar-10-batches-py", "--download"]),
    (["train", "--data", "imagefolder", "--data-dir", "/nonexistent/tree"], ["no image folder", "train"]),
])
def test_bad_names_and_values(tmp_path, capsys, argv, expect):
    code, err = odenets(capsys, *argv, "--out", tmp_path / "run")
    assert code == 2
    for text in expect:
        assert text in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def image_tree(root, bad):
    rng = np.random.default_rng(1)
    for split, n in (("train", 4), ("test", 2)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(root / split / c / f"{i}.jpg")
    path = root / "train" / "b" / "2.jpg"
    path.write_bytes(path.read_bytes()[:bad])
    return path


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_image_stops_the_run_naming_it(tmp_path, capsys, workers):
    bad = image_tree(tmp_path / "tree", bad=100)
    code, err = odenets(capsys, "train", "--data", "imagefolder", "--data-dir", tmp_path / "tree", "--model",
                        "resnet8", "--image-size", 8, "--batch-size", 4, "--epochs", 1, "--workers", workers,
                        "--out", tmp_path / "run")
    assert code == 2 and f"cannot read image {bad}" in err and "--on-bad-image skip" in err
    assert "Caught" not in err  # a worker's error reads as the error itself
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # nothing half-written


@pytest.mark.slow
def test_unreadable_image_is_skipped_when_asked(tmp_path, capsys):
    bad = image_tree(tmp_path / "tree", bad=0)  # an empty file
    code, err = odenets(capsys, "train", "--data", "imagefolder", "--data-dir", tmp_path / "tree", "--model",
                        "resnet8", "--image-size", 8, "--batch-size", 4, "--epochs", 1, "--on-bad-image", "skip",
                        "--out", tmp_path / "run", "--quiet")
    assert code == 0 and f"skipping unreadable image {bad}" in err
    assert (tmp_path / "run" / "result.json").exists()


def test_checkpoint_saves_the_model_sizes(trained):
    state = torch.load(trained, weights_only=True)
    assert (state["num_classes"], state["in_chans"]) == (10, 1)  # the digits: 10 classes, 1 channel
    assert state["model"]["head.fc.weight"].shape[0] == 10 and state["model"]["stem.conv.weight"].shape[1] == 1


def foreign_files(tmp_path, trained):
    model = zoo.create("resnet8", in_chans=1)
    files = {"random bytes": (tmp_path / "random.pt", "not a readable checkpoint"),
             "half a checkpoint": (tmp_path / "half.pt", "not a readable checkpoint"),
             "a bare state dict": (tmp_path / "state_dict.pt", "not an odenets checkpoint"),
             "a pickled model": (tmp_path / "model.pt", "not a readable checkpoint"),
             "a missing file": (tmp_path / "missing.pt", "no checkpoint at")}
    files["random bytes"][0].write_bytes(np.random.default_rng(0).bytes(5000))
    files["half a checkpoint"][0].write_bytes(trained.read_bytes()[: trained.stat().st_size // 2])
    torch.save(model.state_dict(), files["a bare state dict"][0])
    torch.save(model, files["a pickled model"][0])
    return files


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_corrupt_and_foreign_checkpoints(tmp_path, capsys, trained, command):
    for what, (path, expect) in foreign_files(tmp_path, trained).items():
        argv = ["eval", path] if command == "eval" else ["train", "--resume", path]
        code, err = odenets(capsys, *argv)
        assert code == 2 and expect in err and str(path) in err, what


def test_checkpoint_of_another_run(tmp_path, capsys, trained):
    code, err = odenets(capsys, "train", "--resume", trained, "--model", "resnet14", "--out", tmp_path)
    assert code == 2 and "model='resnet8'" in err
    # weights that do not fit the model the checkpoint names
    state = torch.load(trained, weights_only=True)
    state["model"] = zoo.create("resnet14", in_chans=1).state_dict()
    torch.save(state, tmp_path / "swapped.pt")
    code, err = odenets(capsys, "eval", tmp_path / "swapped.pt")
    assert code == 2 and "the saved model does not fit" in err
