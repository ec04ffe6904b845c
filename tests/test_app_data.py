"""Data sets: the embedded digits, image folders (with unreadable files), CIFAR's
folder lookup, and the seeded per-epoch data order."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from odenets.app.data import datasets as data
from odenets.app.data.image_tensors import ImageTensors
from odenets.app.errors import DataError
from odenets.app.run.seeding import EpochSampler

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # torchvision's, the paper's


def write_tree(root, classes=("cat", "dog"), per_class=3, size=12, split_test="test"):
    """A tiny image-folder tree: PNG and JPEG images of random pixels per class."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), (split_test, 2)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def truncate(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def test_digits_split_is_fixed_stratified_and_normalised():
    from sklearn.datasets import load_digits

    a, b = data.load("digits"), data.digits()
    x_train, y_train = a.train.tensors
    x_test, y_test = a.test.tensors
    assert x_train.shape[1:] == (1, 8, 8) and a.in_chans == 1 and a.num_classes == 10
    assert len(a.train) + len(a.test) == len(load_digits().target) == 1797
    assert torch.equal(x_train, b.train.tensors[0]) and torch.equal(y_test, b.test.tensors[1])
    # stratified: each class's share of the test set matches its share of the whole set
    whole = np.bincount(load_digits().target) / 1797
    np.testing.assert_allclose(np.bincount(y_test.numpy()) / len(y_test), whole, atol=0.01)
    assert abs(x_train.mean().item()) < 1e-4 and abs(x_train.std().item() - 1) < 1e-3
    # the split holds real, distinct images: no test image is also a training image
    train_rows = {tuple(r) for r in x_train.flatten(1).numpy().round(4).tolist()}
    assert sum(tuple(r) in train_rows for r in x_test.flatten(1).numpy().round(4).tolist()) < 5


def test_image_folder_reads_classes_and_val_split(tmp_path):
    root = write_tree(tmp_path, split_test="val")
    ds = data.load("imagefolder", str(root), image_size=8)
    assert ds.classes == ["cat", "dog"] and ds.in_chans == 3
    assert len(ds.train) == 6 and len(ds.test) == 4
    x, y = ds.train[4]
    assert x.shape == (3, 8, 8) and y == 1
    assert ds.test[0][0].shape == (3, 8, 8)


def test_truncated_image_stops_naming_the_file(tmp_path):
    root = write_tree(tmp_path)
    bad = truncate(root / "train" / "cat" / "0.jpg")
    ds = data.load("imagefolder", str(root), image_size=8, loader="pil")
    with pytest.raises(DataError, match=str(bad)) as err:
        [ds.train[i] for i in range(len(ds.train))]
    assert "--on-bad-image skip" in str(err.value)
    with pytest.raises(DataError, match=str(bad)) as err:  # the tensor cache reads every image at once
        data.load("imagefolder", str(root), image_size=8)
    assert "--on-bad-image skip" in str(err.value)


@pytest.mark.parametrize("loader", ["pil", "cache"])
def test_truncated_image_is_skipped_when_asked(tmp_path, capsys, loader):
    root = write_tree(tmp_path)
    bad = truncate(root / "train" / "dog" / "1.png")
    ds = data.load("imagefolder", str(root), image_size=8, on_bad_image="skip", loader=loader)
    items = [ds.train[i] for i in range(len(ds.train))]
    assert all(x.shape == (3, 8, 8) for x, _ in items)
    assert str(bad) in capsys.readouterr().err
    big = write_tree(tmp_path / "big", size=70)  # larger images, always through PIL
    truncate(big / "train" / "dog" / "1.png")
    large = data.load("imagefolder", str(big), image_size=8, on_bad_image="skip")
    assert all(x.shape == (3, 8, 8) for x, _ in (large.train[i] for i in range(len(large.train))))
    if loader == "cache":  # left out, and still refused by a run that stops on unreadable images
        assert len(ds.train) == 5 and [y for _, y in items] == [0, 0, 0, 1, 1]
        with pytest.raises(DataError, match=str(bad)):
            data.load("imagefolder", str(root), image_size=8)


def test_cifar_from_an_image_folder_tree_uses_the_cifar_recipe(tmp_path):
    root = write_tree(tmp_path, classes=[str(i) for i in range(10)], per_class=1, size=32)
    ds = data.load("cifar10", str(root))
    assert ds.num_classes == 10 and ds.train[0][0].shape == (3, 32, 32)
    # per-channel normalisation with CIFAR-10's statistics, no resizing
    image = np.asarray(Image.open(root / "test" / "0" / "0.jpg").convert("RGB"), dtype=np.float32) / 255
    expect = (image[..., 0] - 0.4914) / 0.2470
    np.testing.assert_allclose(ds.test[0][0][0].numpy(), expect, atol=1e-5)


def test_missing_folder_says_where_it_looked_and_how_to_download(tmp_path):
    with pytest.raises(DataError) as err:
        data.load("cifar10", str(tmp_path / "nowhere"))
    message = str(err.value)
    assert "cifar-10-batches-py" in message and "--download" in message and str(tmp_path / "nowhere") in message
    with pytest.raises(DataError, match="train"):
        data.load("imagefolder", str(tmp_path / "nowhere"))


def test_corrupt_cifar_files_are_a_data_error(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot read CIFAR10"):
        data.load("cifar10", str(tmp_path))


def test_epoch_sampler_order_depends_on_seed_and_epoch_only():
    def order(seed, epoch, rank=0, world=1, skip=0):
        s = EpochSampler(10, seed, rank, world)
        s.set_epoch(epoch, skip)
        return list(s)

    assert sorted(order(0, 0)) == list(range(10))
    assert order(0, 3) == order(0, 3) and order(0, 3) != order(0, 4) and order(0, 3) != order(1, 3)
    assert order(0, 2, skip=4) == order(0, 2)[4:]
    assert order(0, 2, skip=12) == [] and len(EpochSampler(10)) == 10
    shards = [order(5, 1, rank, 3) for rank in range(3)]  # 10 indices padded to 12
    assert [len(s) for s in shards] == [4, 4, 4]
    assert set().union(*shards) == set(range(10))
    full = order(5, 1)
    assert [i for pair in zip(*shards) for i in pair][:10] == full


def test_train_subset_is_stratified_and_seeded(tmp_path):
    full = data.digits()
    labels = np.array(data.targets(full.train))
    small = data.subset(full, 200, seed=3)
    assert len(small.train) == 200 and small.test is full.test  # the test set stays whole
    mine = np.array([int(small.train[i][1]) for i in range(200)])
    share = 200 * np.bincount(labels, minlength=10) / len(labels)
    assert np.all(np.abs(np.bincount(mine, minlength=10) - share) <= 1)  # each class in its share
    picked = lambda d: sorted(d.train.indices)  # noqa: E731
    assert picked(small) == picked(data.subset(full, 200, seed=3)) != picked(data.subset(full, 200, seed=4))
    assert data.subset(full, len(labels), seed=0) is full
    tree = data.load("imagefolder", str(write_tree(tmp_path, per_class=4)), image_size=8)
    assert data.targets(tree.train) == [0] * 4 + [1] * 4
    assert sorted(data.targets(data.subset(tree, 4, seed=0).train)) == [0, 0, 1, 1]
    for n in (9, len(labels) + 1):
        with pytest.raises(DataError, match="--train-subset must lie between 10 .* and 1347"):
            data.subset(full, n, seed=0)


def test_train_subset_of_the_tensor_cache_keeps_its_batch_augmentation(tmp_path):
    """A subset of images decoded into the tensor cache is again such a set, so its
    batches are still augmented on the device (a torch Subset would lose that)."""
    tree = data.load("imagefolder", str(write_tree(tmp_path, per_class=4)))
    assert isinstance(tree.train, ImageTensors)
    small = data.subset(tree, 4, seed=0)
    assert isinstance(small.train, ImageTensors) and small.train.augment is tree.train.augment
    assert sorted(data.targets(small.train)) == [0, 0, 1, 1] and small.test is tree.test
    keep = [i for i in range(8) if any(torch.equal(small.train.images[j], torch.as_tensor(np.array(tree.train.images[i])))
                                       for j in range(4))]
    assert len(keep) == 4 and small.chosen == tree.chosen


@pytest.mark.parametrize("loader", ["cache", "pil"])
def test_cifar_from_torchvisions_files_is_served_as_the_same_images(monkeypatch, loader):
    """torchvision's CIFAR arrays (here a stand-in for its class, with the files'
    layout: N x 32 x 32 x 3 uint8) are used as they are, as tensors or through PIL."""
    import torchvision

    pixels = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)

    class FakeCIFAR10:
        def __init__(self, root, train, download, transform=None):
            self.data, self.targets, self.classes, self.transform = pixels, [0, 1, 2, 3, 4, 5], list("abcdef"), transform

        def __getitem__(self, i):
            return self.transform(Image.fromarray(self.data[i])), self.targets[i]

        def __len__(self):
            return len(self.data)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    monkeypatch.setattr(Path, "is_dir", lambda self: self.name == "cifar-10-batches-py")
    ds = data.load("cifar10", "somewhere", loader=loader)
    assert ds.chosen["loader"] == loader and ds.num_classes == 6 and len(ds.train) == 6
    expect = (pixels[3].transpose(2, 0, 1) / np.float32(255) - np.array(CIFAR10_MEAN, np.float32)[:, None, None]) \
        / np.array(CIFAR10_STD, np.float32)[:, None, None]
    np.testing.assert_allclose(ds.test[3][0].numpy(), expect, atol=1e-6)
    assert ds.test[3][1] == 3 and ds.train[3][0].shape == (3, 32, 32)


def test_an_unwritable_tensor_cache_is_a_data_error(tmp_path, monkeypatch):
    root = write_tree(tmp_path / "images")
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("ODENETS_CACHE", str(tmp_path / "a-file"))
    with pytest.raises(DataError, match="ODENETS_CACHE"):
        data.load("imagefolder", str(root))
    assert isinstance(data.load("imagefolder", str(root), loader="pil").train, data.ImageFiles)


def bad_file(root, kind, monkeypatch):
    """A bad file among the training images of ``root``: an image too large to decode
    safely (PIL's decompression-bomb guard, its limit lowered for the test), a broken
    symlink, or a symlink loop; its path and a text the error about it holds."""
    path = root / "train" / "dog" / f"bad-{kind}.png"
    if kind == "too large":
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)  # 12x12 images pass, 20x20 is over twice the limit
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(path)
        return path, "exceeds limit of 300 pixels"
    if kind == "broken symlink":
        path.symlink_to(root / "nowhere.png")
        return path, "No such file or directory"
    path.symlink_to(path)
    return path, "Too many levels of symbolic links"


@pytest.mark.parametrize("kind", ["too large", "broken symlink", "symlink loop"])
@pytest.mark.parametrize("loader", ["pil", "cache"])
def test_an_image_too_large_or_a_bad_symlink_is_a_bad_image(tmp_path, capsys, monkeypatch, kind, loader):
    root = write_tree(tmp_path / "tree")
    monkeypatch.setenv("ODENETS_CACHE", str(tmp_path / "cache"))
    bad, reason = bad_file(root, kind, monkeypatch)
    with pytest.raises(DataError, match="--on-bad-image skip") as err:
        ds = data.load("imagefolder", str(root), image_size=8, loader=loader)
        [ds.train[i] for i in range(len(ds.train))]
    assert f"cannot read image {bad}" in str(err.value) and reason in str(err.value)
    ds = data.load("imagefolder", str(root), image_size=8, loader=loader, on_bad_image="skip")
    assert all(x.shape == (3, 8, 8) for x, _ in (ds.train[i] for i in range(len(ds.train))))
    assert f"skipping unreadable image {bad}" in capsys.readouterr().err


def test_an_empty_test_folder_or_a_single_class_is_refused(tmp_path):
    root = write_tree(tmp_path / "empty-test")
    for folder in (root / "test").iterdir():
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    with pytest.raises(DataError, match=f"no class folders in {root / 'test'}: expected"):
        data.load("imagefolder", str(root), image_size=8)
    one = write_tree(tmp_path / "one", classes=("cat",))
    with pytest.raises(DataError, match=f"{one / 'train'} holds one class, cat: there is nothing to tell apart"):
        data.load("imagefolder", str(one), image_size=8)
