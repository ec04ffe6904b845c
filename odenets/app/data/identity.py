"""What data a run was trained and tested on, wherever it lies.

A finished run is reused, and a checkpoint resumed, only on the same data: its kind, and
for data read from files what the tensor cache keys on (:func:`tensor_cache.key`): each
file's name relative to the data's folder, its size and its modification time. The
folder's own path is not part of it, so a data set moved (with its files' times kept,
``cp -p``, ``rsync -a``) is the same data; another folder of images with the same class
names is not. A folder without train/ and test/ is split by its files, so their
identity is its split's too.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import tensor_cache
from .datasets import _CIFAR, EXTENSIONS

DEPTH = 3
"""How deep image files are looked for: <split>/<class>/<image>."""


def identity(name: str, root: str) -> dict:
    """``{"data": name}`` for data shipped with a library (digits), else with the count
    and the digest of the files of data set ``name`` under ``root``: torchvision's CIFAR
    folder where it is there, else every image file down to DEPTH levels."""
    if name == "digits":
        return {"data": name}
    folder = Path(root)
    if name in _CIFAR:
        torchvision = _CIFAR[name][0]
        if folder.name == torchvision:  # the user named torchvision's folder itself
            folder = folder.parent
        if (folder / torchvision).is_dir():
            files = _files(folder / torchvision, DEPTH, lambda p: not p.name.startswith("."))
            return _record(name, folder / torchvision, files)
    return _record(name, folder, _files(folder, DEPTH, lambda p: p.suffix.lower() in EXTENSIONS))


def _record(name: str, root: Path, files: list[str]) -> dict:
    return {"data": name, "files": len(files), "sha256": tensor_cache.key(root, files, {"identity": name})}


def _files(folder: Path, depth: int, wanted) -> list[str]:
    """The files under ``folder`` (down to ``depth`` levels, folders' symlinks followed)
    that ``wanted`` keeps, in sorted order; dot-names are left out."""
    found: list[str] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if _is_dir(entry):
            if depth > 1:
                found += _files(path, depth - 1, wanted)
        elif wanted(path):
            found.append(entry.path)
    return found


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop
        return False


def mismatch(saved, current: dict) -> str:
    """How a run's recorded data identity ``saved`` differs from ``current``'s, or ""
    if it is the same (or was not recorded, by an older odenets: such runs are taken as they were)."""
    if saved is None or saved == current:
        return ""

    def text(record) -> str:
        if not isinstance(record, dict):
            return repr(record)
        files = f", {record['files']:,} files, digest {record.get('sha256')}" if "files" in record else ""
        return f"{record.get('data')}{files}"

    return f"it was trained on {text(saved)}; the data now is {text(current)}"
