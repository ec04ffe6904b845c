"""Data sets by name: ``digits`` (embedded), ``cifar10``/``cifar100``, ``imagefolder``.

``digits`` is scikit-learn's 1,797 real 8x8 handwritten digits, shipped inside
scikit-learn (no download), split once with a fixed seed into a stratified train and
test set. CIFAR comes from torchvision's files (``--download`` fetches them) or from an
image-folder tree; ``imagefolder`` is any tree with class-named folders under
``train/`` and ``test/`` (or ``val/``), ImageNet's layout. torchvision and scikit-learn
are imported only when a data set is loaded, so importing this module is cheap.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from .errors import DataError

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
ON_BAD_IMAGE = ("stop", "skip")
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

_CIFAR = {  # torchvision's folder, class, per-channel mean and std of the training images
    "cifar10": ("cifar-10-batches-py", "CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ("cifar-100-python", "CIFAR100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class Data:
    train: Dataset
    test: Dataset
    classes: list[str]
    in_chans: int

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load(name: str, root: str = "data", download: bool = False, on_bad_image: str = "stop",
         image_size: Optional[int] = None) -> Data:
    """The train and test sets of data set ``name``, read from ``root``."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    if on_bad_image not in ON_BAD_IMAGE:
        raise DataError(f"--on-bad-image must be one of {', '.join(ON_BAD_IMAGE)}, got {on_bad_image!r}")
    if name == "digits":
        return digits()
    if name in _CIFAR:
        return cifar(name, Path(root), download, on_bad_image)
    return image_folder(Path(root), image_size or 224, on_bad_image)


def subset(data: Data, n: int, seed: int) -> Data:
    """``data`` with ``n`` of its training images, drawn with ``seed`` and stratified
    (each class in its share of the training set, as scikit-learn's splitter rounds
    it); the test set stays whole. For short proxies of a study."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    labels = targets(data.train)
    if not data.num_classes <= n <= len(labels):
        raise DataError(f"--train-subset must lie between {data.num_classes} (one image per class) and "
                        f"{len(labels)} (the whole training set), got {n}")
    if n == len(labels):
        return data
    keep, _ = train_test_split(np.arange(len(labels)), train_size=n, stratify=labels, random_state=seed % 2**32)
    return Data(Subset(data.train, sorted(keep.tolist())), data.test, data.classes, data.in_chans)


def targets(dataset: Dataset) -> list[int]:
    """The class of every item of a data set of this module, read without loading the images."""
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1].tolist()
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
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, stratify=y,
                                                        random_state=split_seed)
    mean, std = x_train.mean(), x_train.std()

    def tensors(x, y) -> TensorDataset:
        return TensorDataset(torch.from_numpy((x - mean) / std).view(-1, 1, 8, 8), torch.from_numpy(y).long())

    return Data(tensors(x_train, y_train), tensors(x_test, y_test), [str(d) for d in range(10)], in_chans=1)


def cifar(name: str, root: Path, download: bool, on_bad_image: str = "stop") -> Data:
    """CIFAR-10/100 with the paper's augmentation (pad 4, random 32x32 crop, horizontal
    flip) and per-channel normalisation, from torchvision's files under ``root`` or
    from an image-folder tree ``root/train/<class>/*`` and ``root/test/<class>/*``."""
    from torchvision import datasets, transforms as T

    folder, cls, mean, std = _CIFAR[name]
    size = AtLeast(32, str(root), f"{name.upper()}'s 32x32; --data imagefolder --image-size N reads images of "
                   "other sizes")
    train_tf = T.Compose([size, T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize(mean, std)])
    test_tf = T.Compose([size, T.ToTensor(), T.Normalize(mean, std)])
    if root.name == folder:  # the user named torchvision's folder itself
        root = root.parent
    if _split_dirs(root) and not (root / folder).is_dir():
        found = _folders(root, train_tf, test_tf, on_bad_image)
        found.test[0]  # a folder of images of the wrong size is refused now, not after an epoch of training
        return found
    if not (root / folder).is_dir() and not download:
        raise DataError(f"no {name.upper()} found in {root}: looked for {root / folder} (torchvision's files) and "
                        f"for {root}/train and {root}/test (an image folder). Pass --download to fetch it into "
                        f"{root}, or --data-dir DIR to read it from elsewhere")
    try:
        train = getattr(datasets, cls)(str(root), train=True, download=download, transform=train_tf)
        test = getattr(datasets, cls)(str(root), train=False, download=download, transform=test_tf)
    except (RuntimeError, OSError) as e:  # torchvision reports a missing or corrupt file as RuntimeError
        raise DataError(f"cannot read {name.upper()} from {root / folder}: {e}") from None
    return Data(train, test, list(train.classes), in_chans=3)


def image_folder(root: Path, size: int = 224, on_bad_image: str = "stop") -> Data:
    """Any tree with class folders under ``train/`` and ``test/`` or ``val/``, with the
    ImageNet recipe's augmentation (random resized crop of ``size``, flip) and a
    centre crop (of a resize to 8/7 ``size``) for testing."""
    from torchvision import transforms as T

    norm = T.Normalize(_IMAGENET_MEAN, _IMAGENET_STD)
    train_tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    test_tf = T.Compose([T.Resize(round(size * 8 / 7)), T.CenterCrop(size), T.ToTensor(), norm])
    if not _split_dirs(root):
        raise DataError(f"no image folder at {root}: looked for {root}/train and {root}/test (or {root}/val), "
                        "each holding one folder of images per class. Give its location with --data-dir DIR")
    return _folders(root, train_tf, test_tf, on_bad_image)


def _split_dirs(root: Path) -> Optional[tuple[Path, Path]]:
    test = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    return (root / "train", test) if (root / "train").is_dir() and test is not None else None


def _folders(root: Path, train_tf: Callable, test_tf: Callable, on_bad_image: str) -> Data:
    train_dir, test_dir = _split_dirs(root)
    train = ImageFiles(train_dir, train_tf, on_bad_image=on_bad_image)
    test = ImageFiles(test_dir, test_tf, classes=train.classes, on_bad_image=on_bad_image)
    return Data(train, test, train.classes, in_chans=3)


class AtLeast:
    """A transform that refuses (DataError) an image of data set ``where`` smaller than
    ``size`` x ``size``, saying what was ``expected``, instead of letting a crop fail
    with a traceback."""

    def __init__(self, size: int, where: str, expected: str):
        self.size, self.where, self.expected = size, where, expected

    def __call__(self, image):
        if min(image.size) < self.size:
            raise DataError(f"an image in {self.where} is {image.size[0]}x{image.size[1]}, smaller than "
                            f"{self.expected}")
        return image


class ImageFiles(Dataset):
    """Images under ``root/<class>/``, labelled by the sorted class names, read as RGB.

    An image that cannot be decoded (truncated, corrupt, not an image) stops the run
    with its name (``on_bad_image='stop'``), or is reported once and replaced by the
    next readable image (``'skip'``), which keeps every batch full.
    """

    def __init__(self, root: Path, transform: Optional[Callable] = None, classes: Optional[list[str]] = None,
                 on_bad_image: str = "stop"):
        found = sorted(d.name for d in root.iterdir() if d.is_dir())
        if classes is not None and found != classes:
            raise DataError(f"{root} has classes {', '.join(found)}; the training set has {', '.join(classes)}")
        self.root, self.classes, self.transform, self.on_bad_image = root, found, transform, on_bad_image
        self.samples = [(str(p), i) for i, c in enumerate(found) for p in sorted((root / c).iterdir())
                        if p.suffix.lower() in EXTENSIONS]
        if not self.samples:
            raise DataError(f"no images found in {root}: expected {root}/<class>/<image> with an extension among "
                            f"{', '.join(EXTENSIONS)}")
        self.bad: set[str] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from PIL import Image

        for j in range(len(self.samples)):
            path, label = self.samples[(i + j) % len(self.samples)]
            if path in self.bad:
                continue
            try:
                with Image.open(path) as image:
                    image = image.convert("RGB")
            except (OSError, ValueError, SyntaxError) as e:  # what PIL raises for a bad file
                if self.on_bad_image == "stop":
                    raise DataError(f"cannot read image {path}: {e}. Pass --on-bad-image skip to leave "
                                    "unreadable images out") from None
                self.bad.add(path)
                print(f"odenets: skipping unreadable image {path} ({e})", file=sys.stderr)
                continue
            return (self.transform(image) if self.transform else image), label
        raise DataError(f"no readable image in {self.root}")
