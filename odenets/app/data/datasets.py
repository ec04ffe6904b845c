"""Data sets by name: ``digits`` (embedded), ``cifar10``/``cifar100``, ``imagefolder``.

``digits`` is scikit-learn's 1,797 real 8x8 handwritten digits, shipped inside
scikit-learn (no download), split once with a fixed seed into a stratified train and
test set. CIFAR comes from torchvision's files (``--download`` fetches them) or from an
image-folder tree; ``imagefolder`` is any tree with class-named folders under
``train/`` and ``test/`` (or ``val/``), ImageNet's layout. torchvision and scikit-learn
are imported only when a data set is loaded, so importing this module is cheap.

The images decide the rest: grayscale images give a 1-channel input, and small ones
(at most 64x64, CIFAR's kind) get CIFAR's augmentation at their own size, decoded once
into the tensor cache (:mod:`tensor_cache`) and augmented a batch at a time on the
training device (``loader='cache'``, the default for them; ``'pil'`` reads every image
through PIL on every epoch, as larger images always are).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from ..errors import DataError
from . import image_modes, tensor_cache
from .batch_augment import BatchAugment
from .image_tensors import ImageTensors

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


@dataclass
class Data:
    train: Dataset
    test: Dataset
    classes: list[str]
    in_chans: int
    chosen: dict = field(default_factory=dict)
    """What the images decided (channels, size, augmentation, loader), for the run's record."""

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load(name: str, root: str = "data", download: bool = False, on_bad_image: str = "stop",
         image_size: Optional[int] = None, flip: bool = True, loader: Optional[str] = None) -> Data:
    """The train and test sets of data set ``name``, read from ``root``; ``flip``: mirror
    training images at random; ``loader``: 'cache' or 'pil' (default: 'cache' where the
    images are small)."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    if on_bad_image not in ON_BAD_IMAGE:
        raise DataError(f"--on-bad-image must be one of {', '.join(ON_BAD_IMAGE)}, got {on_bad_image!r}")
    if loader is not None and loader not in LOADERS:
        raise DataError(f"--loader must be one of {', '.join(LOADERS)}, got {loader!r}")
    if name == "digits":
        return digits()
    if name in _CIFAR:
        return cifar(name, Path(root), download, on_bad_image, flip, loader)
    return image_folder(Path(root), image_size, on_bad_image, flip, loader)


def small_images(root: str) -> bool:
    """Whether ``root`` holds an image folder of small images (CIFAR-like, at most 64x64)."""
    split = _split_dirs(Path(root))
    if split is None:
        return False
    return image_modes.survey(ImageFiles(split[0]).paths).small


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
    keep = sorted(keep.tolist())
    train = data.train.subset(keep) if isinstance(data.train, ImageTensors) else Subset(data.train, keep)
    return Data(train, data.test, data.classes, data.in_chans, data.chosen)


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


def cifar(name: str, root: Path, download: bool, on_bad_image: str = "stop", flip: bool = True,
          loader: Optional[str] = None) -> Data:
    """CIFAR-10/100 with the paper's augmentation (pad 4, random 32x32 crop, horizontal
    flip) and per-channel normalisation, from torchvision's files under ``root`` or
    from an image-folder tree ``root/train/<class>/*`` and ``root/test/<class>/*``."""
    from torchvision import datasets

    folder, cls, mean, std = _CIFAR[name]
    if root.name == folder:  # the user named torchvision's folder itself
        root = root.parent
    if _split_dirs(root) and not (root / folder).is_dir():
        train, test = _listed(root, on_bad_image)
        found = image_modes.survey(train.paths)
        if (found.height, found.width) != (32, 32) and found.looked_at:
            raise DataError(f"{name.upper()} images are 32x32, but those in {train.root} are {found.height}x"
                            f"{found.width}; for other images use --data imagefolder")
        return _small(train, test, 3, (32, 32), mean, std, flip, loader or "cache")
    if not (root / folder).is_dir() and not download:
        raise DataError(f"no {name.upper()} found in {root}: looked for {root / folder} (torchvision's files) and "
                        f"for {root}/train and {root}/test (an image folder). Pass --download to fetch it into "
                        f"{root}, or --data-dir DIR to read it from elsewhere")
    train_tf, test_tf = _small_transforms((32, 32), mean, std, flip)
    pil = loader == "pil"
    try:
        train = getattr(datasets, cls)(str(root), train=True, download=download, transform=train_tf if pil else None)
        test = getattr(datasets, cls)(str(root), train=False, download=download, transform=test_tf if pil else None)
    except (RuntimeError, OSError) as e:  # torchvision reports a missing or corrupt file as RuntimeError
        raise DataError(f"cannot read {name.upper()} from {root / folder}: {e}") from None
    chosen = _chosen(3, (32, 32), f"pad {PAD} + random 32x32 crop", flip, loader or "cache")
    if pil:
        return Data(train, test, list(train.classes), 3, chosen)
    tensors = [ImageTensors(torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous(), d.targets, mean, std,
                            BatchAugment(PAD, flip, mean, std)) for d in (train, test)]
    return Data(*tensors, list(train.classes), 3, chosen)


def image_folder(root: Path, size: Optional[int] = None, on_bad_image: str = "stop", flip: bool = True,
                 loader: Optional[str] = None) -> Data:
    """Any tree with class folders under ``train/`` and ``test/`` or ``val/``, read as
    grayscale if its images are. Small images (at most 64x64) get CIFAR's augmentation
    at their own size (or ``size``); larger ones the ImageNet recipe's (random resized
    crop of ``size``, default 224, and flip) and a centre crop (of a resize to 8/7
    ``size``) for testing, through PIL."""
    from torchvision import transforms as T

    if not _split_dirs(root):
        raise DataError(f"no image folder at {root}: looked for {root}/train and {root}/test (or {root}/val), "
                        "each holding one folder of images per class. Give its location with --data-dir DIR")
    train, test = _listed(root, on_bad_image)
    found = image_modes.survey(train.paths)
    mean, std = _imagenet_stats(found.channels)
    if found.small:
        shape = (size, size) if size else (found.height, found.width)
        return _small(train, test, found.channels, shape, mean, std, flip, loader or "cache")
    if loader == "cache":
        raise DataError(f"the tensor cache holds images of at most {image_modes.SMALL}x{image_modes.SMALL}; those in "
                        f"{train.root} are {found.height}x{found.width}: use --loader pil")
    size = size or 224
    norm = T.Normalize(mean, std)
    train.transform = T.Compose([T.RandomResizedCrop(size), *_flip(flip), T.ToTensor(), norm])
    test.transform = T.Compose([T.Resize(round(size * 8 / 7)), T.CenterCrop(size), T.ToTensor(), norm])
    for files in (train, test):
        files.channels = found.channels
    chosen = _chosen(found.channels, (size, size), f"random resized {size}x{size} crop", flip, "pil")
    return Data(train, test, train.classes, found.channels, chosen)


def _imagenet_stats(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's per-channel mean and std; for grayscale, their averages."""
    if channels == 3:
        return _IMAGENET_MEAN, _IMAGENET_STD
    return (sum(_IMAGENET_MEAN) / 3,), (sum(_IMAGENET_STD) / 3,)


def _flip(flip: bool) -> list:
    from torchvision import transforms as T

    return [T.RandomHorizontalFlip()] if flip else []


def _small_transforms(shape: tuple[int, int], mean, std, flip: bool) -> tuple[Callable, Callable]:
    """PIL transforms for small images: CIFAR's augmentation at ``shape`` (height, width)."""
    from torchvision import transforms as T

    train = T.Compose([T.RandomCrop(shape, padding=PAD), *_flip(flip), T.ToTensor(), T.Normalize(mean, std)])
    return train, T.Compose([T.ToTensor(), T.Normalize(mean, std)])


def _chosen(channels: int, shape: tuple[int, int], crop: str, flip: bool, loader: str) -> dict:
    return {"channels": channels, "image_size": list(shape),
            "augmentation": f"{crop}, {'horizontal flip' if flip else 'no flip'}", "loader": loader}


def _small(train: "ImageFiles", test: "ImageFiles", channels: int, shape: tuple[int, int], mean, std, flip: bool,
           loader: str) -> Data:
    """Small images at ``shape``, with CIFAR's augmentation: through PIL, or decoded into
    the tensor cache (``loader``)."""
    for files in (train, test):
        files.channels, files.size = channels, shape
    chosen = _chosen(channels, shape, f"pad {PAD} + random {shape[0]}x{shape[1]} crop", flip, loader)
    if loader == "pil":
        train.transform, test.transform = _small_transforms(shape, mean, std, flip)
        return Data(train, test, train.classes, channels, chosen)
    sets = [ImageTensors(*files.tensors(), mean, std, BatchAugment(PAD, flip, mean, std)) for files in (train, test)]
    return Data(*sets, train.classes, channels, chosen)


def _split_dirs(root: Path) -> Optional[tuple[Path, Path]]:
    test = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    return (root / "train", test) if (root / "train").is_dir() and test is not None else None


def _listed(root: Path, on_bad_image: str) -> tuple["ImageFiles", "ImageFiles"]:
    train_dir, test_dir = _split_dirs(root)
    train = ImageFiles(train_dir, on_bad_image=on_bad_image)
    return train, ImageFiles(test_dir, classes=train.classes, on_bad_image=on_bad_image)


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
        found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
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
