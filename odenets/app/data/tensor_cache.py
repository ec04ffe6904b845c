"""Image sets decoded once into a uint8 array on disk, memory-mapped by every later run.

A cache entry is ``<key>.npy`` (the images, N x C x H x W) and ``<key>.json`` (their
count, a SHA-256 digest and the files left out as unreadable), in :func:`folder`. The
key hashes the source files' names, sizes and modification times with how they were
decoded, so a changed, added or removed file makes a new entry. Both files are written
atomically, the .json last; an entry whose .json is missing, unreadable or disagrees
with the .npy (shape, digest, the files it left out) is rebuilt, never trusted. The
temporary file of a build killed part-way is removed by the next build.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from odenets.files import atomic_write, remove_temporaries

VERSION = 1
"""Bumped when the decoding changes, so that older entries are not used."""


def folder() -> Path:
    """Where entries live: $ODENETS_CACHE, else $XDG_CACHE_HOME/odenets, else ~/.cache/odenets."""
    if os.environ.get("ODENETS_CACHE"):
        return Path(os.environ["ODENETS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "odenets"


def key(root: Path, files: Sequence[str], decoding: dict) -> str:
    """A hash of ``decoding`` and each file's name (relative to ``root``), size and mtime."""
    h = hashlib.sha256(json.dumps({"version": VERSION, **decoding}, sort_keys=True).encode())
    for f in files:
        try:
            st = os.stat(f)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:  # a broken symlink or a loop: decoding it reports it
            size = mtime = -1
        h.update(f"{os.path.relpath(f, root)}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()[:40]


def load(root: Path, files: Sequence[str], shape: tuple[int, int, int], decode: Callable[[str], np.ndarray],
         decoding: dict, announce: bool = True) -> tuple[np.ndarray, dict[int, str]]:
    """The images of ``files`` as a read-only N x C x H x W uint8 array, memory-mapped
    from the cache, decoded with ``decode(path)`` (an H x W x C uint8 array) and stored
    first if needed; and the files ``decode`` could not read (index: reason), whose rows
    hold zeros (``decode`` raises :class:`Unreadable` for them). ``decoding`` says how
    ``decode`` works (channels, size): it is part of the key."""
    base = folder() / key(root, files, decoding)
    npy, meta = base.with_suffix(".npy"), base.with_suffix(".json")
    found = _open(npy, meta, (len(files), *shape))
    if found is not None:
        return found
    remove_temporaries(npy.parent, abandoned=True)  # of builds killed part-way: as large as the entry
    if announce:
        print(f"odenets: decoding {len(files):,} images under {root} once into {npy}", file=sys.stderr, flush=True)
    skipped, digest = {}, hashlib.sha256()

    def write(f) -> None:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                                 "shape": (len(files), *shape)})
        blank = np.zeros(shape, np.uint8)
        for i, path in enumerate(files):
            try:
                image = np.ascontiguousarray(decode(path).transpose(2, 0, 1))
            except Unreadable as e:
                skipped[i], image = str(e), blank
            if image.shape != shape or image.dtype != np.uint8:
                raise ValueError(f"decode({path}) gave {image.dtype} {image.shape}, not uint8 {shape}")
            digest.update(image.data)
            f.write(image.data)

    atomic_write(npy, write)
    record = {"count": len(files), "shape": list(shape), "sha256": digest.hexdigest(), "skipped": skipped}
    atomic_write(meta, lambda f: f.write(json.dumps(record)), "w")
    found = _open(npy, meta, (len(files), *shape))
    if found is None:
        raise OSError(f"the tensor cache {npy} could not be read back after writing it")
    return found


class Unreadable(Exception):
    """Raised by a ``decode`` function, with the reason, for a file to leave out."""


def _open(npy: Path, meta: Path, shape: tuple) -> Optional[tuple[np.ndarray, dict[int, str]]]:
    """The entry's images and skipped files if it is whole and matches ``shape``, else None."""
    try:
        record = json.loads(meta.read_text())
        images = np.load(npy, mmap_mode="r", allow_pickle=False)
        if (not isinstance(record, dict) or images.dtype != np.uint8 or images.shape != shape
                or record.get("count") != shape[0] or record.get("sha256") != hashlib.sha256(images.data).hexdigest()):
            return None
        skipped = {int(i): str(reason) for i, reason in dict(record.get("skipped") or {}).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    if not all(0 <= i < shape[0] for i in skipped):
        return None
    return images, skipped
