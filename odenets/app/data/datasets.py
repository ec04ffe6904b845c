"""Data sets by name: ``digits`` (embedded), ``cifar10``/``cifar100``, ``imagefolder``.

:func:`load` is the one way in: it finds the data set (listing a folder's files and
looking at its images once), reads it, and returns :class:`Data`: the training and
test sets, the data set's :class:`Description` (classes, channels, size, counts, where
the test set comes from, what the images decided) and the batches training iterates,
on the training device, through the loader chosen here.

``digits`` is scikit-learn's 1,797 real 8x8 handwritten digits, shipped inside
scikit-learn (no download), split once with a fixed seed into a stratified train and
test set. CIFAR comes from torchvision's files (``--download`` fetches them) or from an
image-folder tree; ``imagefolder`` is any tree with class-named folders under
``train/`` and ``test/`` (or ``val/``), ImageNet's layout, or a folder of class folders
without a split, which is split here (:mod:`split`). torchvision and scikit-learn are
imported only when a data set is loaded, so importing this module is cheap.

The images decide the rest: grayscale images give a 1-channel input; small ones (at
most 64x64, CIFAR's kind) get CIFAR's augmentation at their own size and mid-size ones
(at most 160x160) the same with padding of an eighth of their side, both decoded once
into the tensor cache (:mod:`tensor_cache`) and augmented a batch at a time on the
training device (``loader='cache'``, the default for them; ``'pil'`` reads every image
through PIL on every epoch, as larger images always are).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from ..errors import DataError
from . import image_modes, tensor_cache
from .batch_augment import BatchAugment
from .batches import OnDevice, SeededItems
from .description import MID, Description
from .image_tensors import Batches, ImageTensors
from .split import SPLIT_SEED, TEST_SPLIT, split

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
ON_BAD_IMAGE = ("stop", "skip")
LOADERS = ("cache", "pil")
PAD = 4
"""CIFAR's augmentation: zero padding by PAD pixels, then a random crop of the image's size."""
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

_CIFAR = {  # torchvision's folder, class, per-channel mean and std of the training images
    "cifar10": ("cifar-10-batches-py", "CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ("cifar-100-python", "CIFAR100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_DIGITS = Description("digits", "", tuple(str(d) for d in range(10)), 1, (8, 8), 1347, 450,
                      "a fixed stratified quarter of the 1,797 digits")


@dataclass
class Data:
    train: Dataset
    test: Dataset
    description: Description

    @property
    def classes(self) -> list[str]:
        return list(self.description.classes)

    @property
    def in_chans(self) -> int:
        return self.description.channels

    @property
    def num_classes(self) -> int:
        return len(self.description.classes)

    @property
    def chosen(self) -> dict:
        """What the images decided (channels, size, augmentation, loader), for the run's record."""
        return self.description.chosen

    def train_batches(self, order: Sequence[int], batch_size: int, device: torch.device,
                      batch_seed: Callable[[int], int], item_seed: Callable[[int], int], workers: int = 0,
                      generator: Optional[torch.Generator] = None) -> Iterable:
        """The training batches in the order of ``order`` (a sampler), on ``device``: from
        the tensor cache, batch b augmented with a generator seeded by ``batch_seed(b)``;
        else through a DataLoader of ``workers`` processes, image i augmented with torch's
        generator seeded by ``item_seed(i)`` (:class:`SeededItems`)."""
        if isinstance(self.train, ImageTensors):
            return Batches(self.train.to(device), order, batch_size, device, batch_seed)
        items = SeededItems(self.train, item_seed)
        return OnDevice(DataLoader(items, batch_size, sampler=order, num_workers=workers, generator=generator,
                                   pin_memory=torch.device(device).type == "cuda"), device)

    def test_batches(self, batch_size: int, device: torch.device, rank: int = 0, world: int = 1,
                     workers: int = 0) -> Iterable:
        """This process's share of the test set (every world-th image, none twice), in
        batches on ``device``."""
        if isinstance(self.test, ImageTensors):
            return Batches(self.test.to(device), range(rank, len(self.test), world), batch_size, device)
        shard = Subset(self.test, range(rank, len(self.test), world))
        return OnDevice(DataLoader(shard, batch_size=batch_size, num_workers=workers,
                                   pin_memory=torch.device(device).type == "cuda"), device)


@dataclass
class Found:
    """A data set found and looked at, not yet read: its description, and for an image
    folder its training and test files. What :func:`find` returns and :func:`load` reads."""

    description: Description
    train: Optional["ImageFiles"] = None
    test: Optional["ImageFiles"] = None


def find(name: str, root: str = "data", test_split: Optional[float] = None, on_bad_image: str = "stop") -> Found:
    """Data set ``name`` under ``root``, found: a folder's files listed (and split, for a
    folder of class folders without train/ and test/: ``test_split`` of each class held
    out, default :data:`TEST_SPLIT`) and its images looked at, once
    (:func:`image_modes.survey`). Cheap: no image is decoded."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    if on_bad_image not in ON_BAD_IMAGE:
        raise DataError(f"--on-bad-image must be one of {', '.join(ON_BAD_IMAGE)}, got {on_bad_image!r}")
    if name == "digits":
        return Found(_DIGITS)
    folder = Path(root)
    if name in _CIFAR:
        if folder.name == _CIFAR[name][0]:  # the user named torchvision's folder itself
            folder = folder.parent
        if not (_split_dirs(folder) and not (folder / _CIFAR[name][0]).is_dir()):
            return Found(Description(name, str(folder), (), 3, (32, 32), 50000, 10000, "CIFAR's test batch"))
    return _found_folder(name, folder, test_split, on_bad_image)


def load(name, root: str = "data", *, download: bool = False, on_bad_image: str = "stop",
         image_size: Optional[int] = None, flip: bool = True, loader: Optional[str] = None,
         test_split: Optional[float] = None) -> Data:
    """The train and test sets of data set ``name`` (a name, or what :func:`find`
    returned for it), read from ``root``; ``flip``: mirror training images at random;
    ``loader``: 'cache' or 'pil' (default: 'cache' where the images are at most 160x160);
    ``test_split``: the share of each class held out from a folder without a split."""
    found = name if isinstance(name, Found) else find(name, root, test_split, on_bad_image)
    if loader is not None and loader not in LOADERS:
        raise DataError(f"--loader must be one of {', '.join(LOADERS)}, got {loader!r}")
    kind = found.description.kind
    if kind == "digits":
        return digits()
    if kind in _CIFAR:
        return _cifar(found, download, flip, loader)
    return _image_folder(found, image_size, flip, loader)


def subset(data: Data, n: int, seed: int) -> Data:
    """``data`` with ``n`` of its training images, drawn with ``seed`` and stratified
    (each class in its share of the training set, as scikit-learn's splitter rounds
    it); the test set stays whole. For short proxies of a study."""
    from sklearn.model_selection import train_test_split

    labels = targets(data.train)
    if not data.num_classes <= n <= len(labels):
        raise DataError(f"--train-subset must lie between {data.num_classes} (one image per class) and "
                        f"{len(labels)} (the whole training set), got {n}")
    if n == len(labels):
        return data
    keep, _ = train_test_split(np.arange(len(labels)), train_size=n, stratify=labels, random_state=seed % 2**32)
    keep = sorted(keep.tolist())
    train = data.train.subset(keep) if isinstance(data.train, ImageTensors) else Subset(data.train, keep)
    return Data(train, data.test, replace(data.description, train_images=n))


def targets(dataset: Dataset) -> list[int]:
    """The class of every item of a data set of this module, read without loading the images."""
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1].tolist()
    if isinstance(dataset, ImageTensors):
        return dataset.labels.tolist()
    if isinstance(dataset, ImageFiles):
        return [label for _, label in dataset.samples]
    if isinstance(dataset, Subset):
        every = targets(dataset.dataset)
        return [every[i] for i in dataset.indices]
    return list(dataset.targets)  # torchvision's CIFAR


def digits(test_fraction: float = 0.25, split_seed: int = 0) -> Data:
    """scikit-learn's 8x8 digits as 1x8x8 tensors, pixels scaled to [0, 1] and then
    standardised with the training set's mean and std; the split is stratified and
    fixed (``split_seed``), the same for every run."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, stratify=y,
                                                        random_state=split_seed)
    mean, std = x_train.mean(), x_train.std()

    def tensors(x, y) -> TensorDataset:
        return TensorDataset(torch.from_numpy((x - mean) / std).view(-1, 1, 8, 8), torch.from_numpy(y).long())

    return Data(tensors(x_train, y_train), tensors(x_test, y_test),
                _DIGITS.with_counts(len(y_train), len(y_test), {}))


def _cifar(found: Found, download: bool, flip: bool = True, loader: Optional[str] = None) -> Data:
    """CIFAR-10/100 with the paper's augmentation (pad 4, random 32x32 crop, horizontal
    flip) and per-channel normalisation, from torchvision's files under the found root or
    from an image-folder tree ``root/train/<class>/*`` and ``root/test/<class>/*``."""
    from torchvision import datasets

    d = found.description
    name, root = d.kind, Path(d.root)
    folder, cls, mean, std = _CIFAR[name]
    if found.train is not None:
        if d.size not in ((32, 32), (0, 0)):  # (0, 0): none readable, reported when read
            raise DataError(f"{name.upper()} images are 32x32, but those in {found.train.root} are {d.size[0]}x"
                            f"{d.size[1]}; for other images use --data imagefolder")
        return _cached(found, (32, 32), PAD, mean, std, flip, loader or "cache")
    if not (root / folder).is_dir() and not download:
        raise DataError(f"no {name.upper()} found in {root}: looked for {root / folder} (torchvision's files) and "
                        f"for {root}/train and {root}/test (an image folder). Pass --download to fetch it into "
                        f"{root}, or --data-dir DIR to read it from elsewhere")
    train_tf, test_tf = _small_transforms((32, 32), PAD, mean, std, flip)
    pil = loader == "pil"
    try:
        train = getattr(datasets, cls)(str(root), train=True, download=download, transform=train_tf if pil else None)
        test = getattr(datasets, cls)(str(root), train=False, download=download, transform=test_tf if pil else None)
    except (RuntimeError, OSError) as e:  # torchvision reports a missing or corrupt file as RuntimeError
        raise DataError(f"cannot read {name.upper()} from {root / folder}: {e}") from None
    chosen = _chosen(3, (32, 32), f"pad {PAD} + random 32x32 crop", flip, loader or "cache")
    described = replace(d, classes=tuple(train.classes)).with_counts(len(train), len(test), chosen)
    if pil:
        return Data(train, test, described)
    tensors = [ImageTensors(torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(), s.targets, mean, std,
                            BatchAugment(PAD, flip, mean, std)) for s in (train, test)]
    return Data(*tensors, described)


def _image_folder(found: Found, size: Optional[int] = None, flip: bool = True, loader: Optional[str] = None) -> Data:
    """An image folder, read as grayscale if its images are. Small images (at most
    64x64) get CIFAR's augmentation at their own size (or ``size``), mid-size ones (at
    most 160x160) the same with padding of an eighth of their side; larger ones the
    ImageNet recipe's (random resized crop of ``size``, default 224, and flip) and a
    centre crop (of a resize to 8/7 ``size``) for testing, through PIL."""
    from torchvision import transforms as T

    d, train, test = found.description, found.train, found.test
    mean, std = _imagenet_stats(d.channels)
    if d.size_class != "large":
        shape = (size, size) if size else d.size
        pad = PAD if d.size_class == "small" else round(min(shape) / 8)
        return _cached(found, shape, pad, mean, std, flip, loader or "cache")
    if loader == "cache":
        raise DataError(f"the tensor cache holds images of at most {MID}x{MID}; those in {train.root} are "
                        f"{d.size[0]}x{d.size[1]}: use --loader pil")
    size = size or 224
    norm = T.Normalize(mean, std)
    train.transform = T.Compose([T.RandomResizedCrop(size), *_flip(flip), T.ToTensor(), norm])
    test.transform = T.Compose([T.Resize(round(size * 8 / 7)), T.CenterCrop(size), T.ToTensor(), norm])
    for files in (train, test):
        files.channels = d.channels
    chosen = _chosen(d.channels, (size, size), f"random resized {size}x{size} crop", flip, "pil")
    return Data(train, test, d.with_counts(len(train), len(test), chosen))


def _found_folder(name: str, root: Path, test_split: Optional[float], on_bad_image: str) -> Found:
    """An image folder's files, split if it has no split, and a look at its images."""
    dirs = _split_dirs(root)
    record = None
    if dirs is not None:
        if test_split is not None:
            raise DataError(f"--test-split splits a folder of class folders; {root} has its own split "
                            f"({dirs[0].name}/ and {dirs[1].name}/): leave --test-split out")
        train = ImageFiles(dirs[0], on_bad_image=on_bad_image)
        test = ImageFiles(dirs[1], classes=train.classes, on_bad_image=on_bad_image)
        test_set = "test/" if dirs[1].name == "test" else "val/ (there is no test/)"
    elif name == "imagefolder" and root.is_dir() and _class_dirs(root) and not (root / "train").is_dir():
        whole = ImageFiles(root, on_bad_image=on_bad_image)
        kept, held, record = split(root, whole.samples, TEST_SPLIT if test_split is None else test_split,
                                   SPLIT_SEED)
        train, test = whole.only(kept), whole.only(held)
        test_set = f"{100 * record['fraction']:g}% of each class held out (split seed {record['seed']})"
    else:
        raise DataError(f"no image folder at {root}: looked for {root}/train and {root}/test (or {root}/val), each "
                        f"holding one folder of images per class, or for class folders in {root} itself (split "
                        "here). Give its location with --data-dir DIR")
    looked = image_modes.survey(train.paths)
    size = (looked.height, looked.width) if looked.looked_at else (0, 0)
    return Found(Description(name, str(root), tuple(train.classes), looked.channels, size, len(train), len(test),
                             test_set, record), train, test)


def _imagenet_stats(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's per-channel mean and std; for grayscale, their averages."""
    if channels == 3:
        return _IMAGENET_MEAN, _IMAGENET_STD
    return (sum(_IMAGENET_MEAN) / 3,), (sum(_IMAGENET_STD) / 3,)


def _flip(flip: bool) -> list:
    from torchvision import transforms as T

    return [T.RandomHorizontalFlip()] if flip else []


def _small_transforms(shape: tuple[int, int], pad: int, mean, std, flip: bool) -> tuple[Callable, Callable]:
    """PIL transforms for images at ``shape`` (height, width): CIFAR's augmentation with ``pad``."""
    from torchvision import transforms as T

    train = T.Compose([T.RandomCrop(shape, padding=pad), *_flip(flip), T.ToTensor(), T.Normalize(mean, std)])
    return train, T.Compose([T.ToTensor(), T.Normalize(mean, std)])


def _chosen(channels: int, shape: tuple[int, int], crop: str, flip: bool, loader: str) -> dict:
    return {"channels": channels, "image_size": list(shape),
            "augmentation": f"{crop}, {'horizontal flip' if flip else 'no flip'}", "loader": loader}


def _cached(found: Found, shape: tuple[int, int], pad: int, mean, std, flip: bool, loader: str) -> Data:
    """Images at ``shape``, with CIFAR's augmentation (padding ``pad``): through PIL, or
    decoded into the tensor cache (``loader``)."""
    d, train, test = found.description, found.train, found.test
    for files in (train, test):
        files.channels, files.size = d.channels, shape
    chosen = _chosen(d.channels, shape, f"pad {pad} + random {shape[0]}x{shape[1]} crop", flip, loader)
    if loader == "pil":
        train.transform, test.transform = _small_transforms(shape, pad, mean, std, flip)
        return Data(train, test, d.with_counts(len(train), len(test), chosen))
    sets = [ImageTensors(*files.tensors(), mean, std, BatchAugment(pad, flip, mean, std)) for files in (train, test)]
    return Data(*sets, d.with_counts(len(sets[0]), len(sets[1]), chosen))


def _split_dirs(root: Path) -> Optional[tuple[Path, Path]]:
    test = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    return (root / "train", test) if (root / "train").is_dir() and test is not None else None


def _class_dirs(root: Path) -> list[str]:
    """The class folders of ``root``: its folders not starting with "."."""
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


class ImageFiles(Dataset):
    """Images under ``root/<class>/``, labelled by the sorted class names, converted to
    ``channels`` (:func:`image_modes.convert`) and, with ``size`` (height, width),
    resized to it where they differ. Names starting with "." are neither classes nor
    images; a class folder without images is an error naming it.

    An image that cannot be decoded (truncated, corrupt, not an image) stops the run
    with its name (``on_bad_image='stop'``), or is reported once and replaced by the
    next readable image (``'skip'``), which keeps every batch full.
    """

    def __init__(self, root: Path, transform: Optional[Callable] = None, classes: Optional[list[str]] = None,
                 on_bad_image: str = "stop", channels: int = 3, size: Optional[tuple[int, int]] = None):
        found = _class_dirs(root)
        if not found:
            raise DataError(f"no class folders in {root}: expected {root}/<class>/<image>, a folder per class")
        if classes is not None and found != classes:
            raise DataError(f"{root} has classes {', '.join(found)}; the training set has {', '.join(classes)}")
        if len(found) == 1:
            raise DataError(f"{root} holds one class, {found[0]}: there is nothing to tell apart (every image would "
                            f"be {found[0]}); give a folder per class, at least two")
        self.root, self.classes, self.transform, self.on_bad_image = root, found, transform, on_bad_image
        self.channels, self.size = channels, size
        self.samples = []
        for i, c in enumerate(found):
            images = [(str(p), i) for p in sorted((root / c).iterdir())
                      if p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")]
            if not images:
                raise DataError(f"the class folder {root / c} holds no images (files ending in "
                                f"{', '.join(EXTENSIONS)}): add its images or remove it")
            self.samples += images
        self.bad: set[str] = set()

    def only(self, samples: list[tuple[str, int]]) -> "ImageFiles":
        """These files restricted to ``samples`` (a part of :attr:`samples`): a split's half."""
        part = object.__new__(ImageFiles)
        part.__dict__.update(self.__dict__, samples=list(samples), bad=set())
        return part

    @property
    def paths(self) -> list[str]:
        return [p for p, _ in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        for j in range(len(self.samples)):
            path, label = self.samples[(i + j) % len(self.samples)]
            if path in self.bad:
                continue
            try:
                image = self.read(path)
            except image_modes.BAD_IMAGE as e:
                self._unreadable(path, e)
                self.bad.add(path)
                continue
            return (self.transform(image) if self.transform else image), label
        raise DataError(f"no readable image in {self.root}")

    def read(self, path: str):
        """The image at ``path`` with ``channels``, at ``size`` if set; raises what PIL raises."""
        from PIL import Image

        with Image.open(path) as image:
            image = image_modes.convert(image, self.channels)
        if self.size is not None and image.size != self.size[::-1]:
            image = image.resize(self.size[::-1], Image.Resampling.BILINEAR)
        return image

    def tensors(self) -> tuple[np.ndarray, list[int]]:
        """All images as one uint8 array (N x C x H x W, through the tensor cache) and their
        labels, unreadable images left out (``on_bad_image='skip'``)."""
        if self.size is None:
            raise ValueError("tensors() needs a size")
        shape = (self.channels, *self.size)

        def decode(path: str) -> np.ndarray:
            try:
                return np.asarray(self.read(path)).reshape(self.size[0], self.size[1], self.channels)
            except image_modes.BAD_IMAGE as e:
                if self.on_bad_image == "stop":
                    self._unreadable(path, e)
                raise tensor_cache.Unreadable(str(e)) from None  # reported below

        try:
            images, skipped = tensor_cache.load(self.root, self.paths, shape, decode, {
                "channels": self.channels, "size": list(self.size), "resize": "bilinear"})
        except OSError as e:  # the images' own errors are caught in decode
            raise DataError(f"cannot write the tensor cache in {tensor_cache.folder()}: {e}. Set ODENETS_CACHE to a "
                            "writable folder, or pass --loader pil") from None
        for i, reason in skipped.items():
            self._unreadable(self.samples[i][0], reason)
        labels = [label for _, label in self.samples]
        if skipped:
            keep = [i for i in range(len(labels)) if i not in skipped]
            images, labels = images[keep], [labels[i] for i in keep]
        return images, labels

    def _unreadable(self, path: str, error) -> None:
        """Stop (``on_bad_image='stop'``) or report an unreadable image."""
        if self.on_bad_image == "stop":
            raise DataError(f"cannot read image {path}: {error}. Pass --on-bad-image skip to leave "
                            "unreadable images out") from None
        print(f"odenets: skipping unreadable image {path} ({error})", file=sys.stderr)
