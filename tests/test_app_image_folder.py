"""Image folders whose images set the recipe: grayscale gives one channel, small images
the CIFAR recipe through the tensor cache; the run says what it chose and plans its
epochs in one line; a run on the cache resumes to bit-identical weights."""
import json
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from odenets.app.commands import cli
from odenets.app.commands.train import fit
from odenets.app.data import datasets as data
from odenets.app.data.image_tensors import ImageTensors
from odenets.app.errors import DataError, Interrupted
from odenets.app.run import checkpoint
from odenets.app.settings.config import Config


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """scikit-learn's 8x8 digits as grayscale PNGs: 300 training and 100 test images."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    root = tmp_path_factory.mktemp("digits-folder")
    for i in range(400):
        folder = root / ("train" if i < 300 else "test") / str(y[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[i].reshape(8, 8) * 255 / 16).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def test_small_grayscale_images_get_one_channel_and_the_cifar_recipe(digits_folder):
    cfg = Config(data="imagefolder", data_dir=str(digits_folder)).resolved()
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.lr, cfg.milestones) == ("resnet20", 160, 128, 0.1, [0.5, 0.75])
    ds = data.load("imagefolder", str(digits_folder))
    assert ds.in_chans == 1 and isinstance(ds.train, ImageTensors) and len(ds.train) == 300
    assert ds.chosen == {"channels": 1, "image_size": [8, 8], "loader": "cache",
                         "augmentation": "pad 4 + random 8x8 crop, horizontal flip"}
    # the PIL loader reads the same test images, to the bit
    pil = data.load("imagefolder", str(digits_folder), loader="pil")
    assert not isinstance(pil.train, ImageTensors) and pil.train[0][0].shape == (1, 8, 8)
    assert all(torch.equal(ds.test[i][0], pil.test[i][0]) and ds.test[i][1] == pil.test[i][1] for i in range(100))


def test_large_images_keep_the_imagenet_recipe_and_pil(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (170, 180, 3), dtype=np.uint8)).save(tmp_path / split / c / "0.png")
    cfg = Config(data="imagefolder", data_dir=str(tmp_path)).resolved()
    assert (cfg.model, cfg.epochs, cfg.batch_size) == ("resnet18", 90, 256)
    ds = data.load("imagefolder", str(tmp_path), image_size=32)
    assert ds.in_chans == 3 and ds.chosen["loader"] == "pil" and ds.train[0][0].shape == (3, 32, 32)
    with pytest.raises(DataError, match="at most 160x160"):
        data.load("imagefolder", str(tmp_path), loader="cache")


@pytest.mark.slow
def test_a_run_says_what_it_chose_and_plans_its_epochs(digits_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--data", "imagefolder", "--data-dir", str(digits_folder), "--model", "resnet8",
                     "--epochs", "1", "--batch-size", "64", "--no-flip", "--amp", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()  # not a terminal: no progress bars, the plan all the same
    chose = next(line for line in lines if line.startswith("data: "))
    assert "300 training images" in chose and "1 channel at 8x8" in chose and "no flip" in chose
    assert "loader: cache" in chose and "resnet8" in chose
    plan = next(i for i, line in enumerate(lines) if line.startswith("plan: "))
    assert plan < next(i for i, line in enumerate(lines) if line.startswith("epoch 1/1"))
    for words in ("resnet8", "parameters", "cpu, bfloat16 autocast", "300 training images", "5 steps per epoch",
                  "per epoch, ", "for the run's 1 epoch (from"):
        assert words in lines[plan], words
    saved = json.loads((out / "config.json").read_text())
    assert saved["flip"] is False and saved["loader"] is None and saved["data_chosen"]["channels"] == 1


def interrupt_at(step):
    def hook(model, epoch, s):
        if s == step:
            os.kill(os.getpid(), signal.SIGINT)
    return hook


@pytest.mark.slow
def test_a_run_on_the_cache_resumes_to_the_same_weights(digits_folder, tmp_path):
    def config(out):
        return Config(model="resnet8", data="imagefolder", data_dir=str(digits_folder), epochs=2, batch_size=64,
                      lr=0.05, seed=3, out=str(out), quiet=True)

    whole = fit(config(tmp_path / "whole"))
    assert whole["data_chosen"]["loader"] == "cache"
    part = tmp_path / "part"
    with pytest.raises(Interrupted):  # 5 batches an epoch: stop after 3 of the first
        fit(config(part), on_step=interrupt_at(3))
    state = checkpoint.load(part / "checkpoint.pt")
    assert (state["epoch"], state["batch"]) == (0, 3)
    resumed = fit(config(part), state)
    a, b = (checkpoint.load(run / "checkpoint.pt")["model"] for run in (tmp_path / "whole", part))
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert resumed["test_acc"] == whole["test_acc"]


@pytest.mark.slow
def test_the_pil_loader_gives_the_same_run_with_any_workers_and_resumes_exactly(digits_folder, tmp_path):
    """Each image's crop and flip come from (seed, epoch, image), not from the worker that
    loads it: worker processes change nothing, even across a resumption mid-epoch."""
    def config(out, workers):
        return Config(model="resnet8", data="imagefolder", data_dir=str(digits_folder), loader="pil", epochs=2,
                      batch_size=64, lr=0.05, seed=3, workers=workers, out=str(out), quiet=True)

    def weights(run):
        return checkpoint.load(run / "checkpoint.pt")["model"]

    fit(config(tmp_path / "none", 0))
    fit(config(tmp_path / "two", 2))
    part = tmp_path / "part"
    with pytest.raises(Interrupted):  # 5 batches an epoch: stop after 3 of the second
        fit(config(part, 2), on_step=interrupt_at(8))
    state = checkpoint.load(part / "checkpoint.pt")
    assert (state["epoch"], state["batch"]) == (1, 3)
    fit(config(part, 2), state)
    a = weights(tmp_path / "none")
    for run in (tmp_path / "two", part):
        b = weights(run)
        assert all(torch.equal(a[k], b[k]) for k in a), (run.name, [k for k in a if not torch.equal(a[k], b[k])])
