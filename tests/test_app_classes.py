"""A checkpoint stores its data set's class names; ``eval`` and ``--resume`` on data
whose classes differ (even in the same number) is an error, not an accuracy."""
import numpy as np
import pytest
import torch
from PIL import Image

from odenets.app.commands import cli


def image_tree(root, classes):
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("classes")
    tree = image_tree(root / "ab", ["apple", "bear"])
    out = root / "run"
    assert cli.main(["train", "--data", "imagefolder", "--data-dir", str(tree), "--model", "resnet8",
                     "--image-size", "8", "--batch-size", "4", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    return out, root


def test_the_checkpoint_holds_the_class_names(trained):
    out, _ = trained
    assert torch.load(out / "checkpoint.pt", weights_only=True)["classes"] == ["apple", "bear"]


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_other_class_names_of_the_same_count_are_refused(trained, capsys, command):
    out, root = trained
    other = root / f"other-{command}"
    if not other.exists():
        image_tree(other, ["apple", "beetle"])
    argv = (["eval", str(out), "--data-dir", str(other)] if command == "eval" else
            ["train", "--resume", str(out), "--data-dir", str(other), "--out",
             str(root / f"resumed-{command}")])
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "trained on 2 classes" in err and "class 1 is 'bear' there but 'beetle' here" in err


def test_the_same_class_names_evaluate(trained, capsys):
    out, root = trained
    assert cli.main(["eval", str(out), "--json"]) == 0
