"""A folder of class folders without a split, the size rule, and the one look at the data."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from odenets.app.commands import cli
from odenets.app.data import datasets as data
from odenets.app.data import image_modes
from odenets.app.errors import DataError, UsageError
from odenets.app.settings.config import Config
from odenets.app.settings.recipe import recipe


def write_classes(root, counts=None, size=(10, 10), gray=True):
    """Class folders straight under ``root`` (no train/ or test/): ``counts`` images per class."""
    rng = np.random.default_rng(0)
    for c, n in (counts or {"a": 10, "b": 15, "c": 5}).items():
        (root / c).mkdir(parents=True)
        for i in range(n):
            shape = size if gray else (*size, 3)
            name = f"{c.split('/')[-1]}{i:03d}.png"
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / c / name)
    return root


def held_out(ds):
    return sorted(p.split("/")[-1] for p, _ in ds.test.samples)


def test_a_folder_without_a_split_is_split_stratified_with_its_own_seed(tmp_path):
    root = write_classes(tmp_path / "imgs")
    ds = data.load("imagefolder", str(root), loader="pil")
    d = ds.description
    assert (d.train_images, d.test_images) == (24, 6) and ds.classes == ["a", "b", "c"]
    # stratified: 20% of each class, as the class sizes 10, 15, 5 give it
    assert sorted(np.bincount(data.targets(ds.test)).tolist()) == [1, 2, 3]
    assert not set(held_out(ds)) & {p.split("/")[-1] for p, _ in ds.train.samples}
    assert d.split["fraction"] == 0.2 and d.split["seed"] == 0 and d.split["held_out"] == 6
    assert "20% of each class held out" in d.test_set
    # the same split elsewhere, whatever the run's seed: it depends on the files' names alone
    copy = shutil.copytree(root, tmp_path / "elsewhere")
    again = data.load("imagefolder", str(copy), loader="pil")
    assert held_out(again) == held_out(ds) and again.description.split == d.split
    wider = data.load("imagefolder", str(root), loader="pil", test_split=0.5)
    assert wider.description.test_images == 15 and wider.description.split["sha256"] != d.split["sha256"]


def test_split_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(DataError, match="at least 2 per class"):
        data.load("imagefolder", str(write_classes(tmp_path / "one", {"a": 4, "b": 1})))
    with pytest.raises(DataError, match="has its own split"):
        data.load("imagefolder", str(write_classes(tmp_path / "own", {"train/a": 2, "test/a": 2})), test_split=0.3)
    with pytest.raises(UsageError, match="--test-split is the share"):
        Config(data="imagefolder", test_split=1.5).check()


def test_train_and_val_without_test_uses_val_and_says_so(tmp_path):
    root = write_classes(tmp_path, {"train/a": 3, "train/b": 3, "val/a": 2, "val/b": 2})
    d = data.find("imagefolder", str(root)).description
    assert d.test_set == "val/ (there is no test/)" and d.split is None and d.test_images == 4


@pytest.mark.parametrize("side, size_class, model, epochs", [
    (64, "small", "resnet20", 160), (65, "mid", "resnet18", 60), (160, "mid", "resnet18", 60),
    (161, "large", "resnet18", 90)])
def test_the_images_size_sets_the_recipe(tmp_path, side, size_class, model, epochs):
    root = write_classes(tmp_path, {"a": 2, "b": 2}, size=(side, side))
    d = data.find("imagefolder", str(root)).description
    assert d.size_class == size_class and d.size == (side, side)
    cfg = Config(data="imagefolder", data_dir=str(root)).resolved(d)
    assert (cfg.model, cfg.epochs) == (model, epochs)


def test_mid_size_images_train_at_their_own_size_and_epochs_fit_their_count(tmp_path):
    root = write_classes(tmp_path, {"a": 4, "b": 4}, size=(96, 80), gray=False)
    ds = data.load("imagefolder", str(root))  # 96 high, 80 wide: never upsampled
    assert ds.chosen["image_size"] == [96, 80] and ds.chosen["loader"] == "cache"
    assert ds.chosen["augmentation"].startswith("pad 10 + random 96x80 crop")  # an eighth of the shorter side
    x, _ = next(iter(ds.train_batches(range(6), 3, "cpu", lambda b: b, lambda i: i)))
    assert x.shape == (3, 3, 96, 80)
    # the epochs fit the data set: about 300,000 images seen, between 15 and 60 epochs
    assert [recipe("imagefolder", "", "mid", n).epochs for n in (1653, 8000, 50000)] == [60, 38, 15]


def test_a_run_looks_at_the_data_once(tmp_path, monkeypatch):
    """Listing, surveying, splitting and reading a folder happen once per run: the
    recipe, the plan and the run's record all read that one description."""
    from odenets.app.commands.train import fit

    root = write_classes(tmp_path / "imgs", {"a": 6, "b": 6})
    looks = []
    survey = image_modes.survey
    monkeypatch.setattr(image_modes, "survey",
                        lambda paths, *a, **k: looks.append(len(paths)) or survey(paths, *a, **k))
    result = fit(Config(data="imagefolder", data_dir=str(root), model="resnet8", epochs=1, batch_size=8,
                        out=str(tmp_path / "run"), quiet=True))
    assert looks == [10]  # once, over the 10 training images of the split
    assert result["data_set"]["split"]["held_out"] == 2 and result["data_set"]["train_images"] == 10


@pytest.mark.slow
def test_resume_eval_and_analyze_refuse_another_split(tmp_path, capsys):
    root = write_classes(tmp_path / "imgs", {"a": 10, "b": 10})
    out = tmp_path / "run"
    assert cli.main(["train", "--data", "imagefolder", "--data-dir", str(root), "--model", "resnet8", "--epochs", "1",
                     "--batch-size", "8", "--out", str(out), "--quiet"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["data_set"]["split"]["held_out"] == 4 and saved["test_split"] is None
    assert cli.main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_images"] == 4
    assert cli.main(["analyze", "spectra", str(out), "--images", "2", "--json"]) == 0
    # a file renamed: the same fraction draws another held-out set, which eval, analyze and resume refuse
    moved = sorted((root / "a").iterdir())[0]
    moved.rename(moved.with_name("zz-renamed.png"))
    capsys.readouterr()
    assert cli.main(["eval", str(out)]) != 0
    assert "another test set" in capsys.readouterr().err
    assert cli.main(["analyze", "spectra", str(out), "--images", "2"]) != 0
    assert "another test set" in capsys.readouterr().err
    assert cli.main(["train", "--data", "imagefolder", "--data-dir", str(root), "--out", str(out),
                     "--resume", "--quiet"]) != 0
    assert "another test set" in capsys.readouterr().err
