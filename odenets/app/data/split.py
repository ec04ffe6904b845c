"""A folder of class folders without a train/test split, split here: the same split
for every run.

The held-out images are drawn per class (stratified: each class keeps its share of the
test set, as scikit-learn's splitter rounds it) with :data:`SPLIT_SEED`, a seed of
the split's own and not the run's, so that every run of a study, whatever its seed,
tests on the same images. The files are taken in sorted order of their paths relative
to the folder, so the split depends on the files' names alone, not on where the folder
lies or the order the file system lists it. A run records the split (fraction, seed,
held-out count and the SHA-256 of the held-out names) and a resumed run or ``odenets
eval`` that finds another split stops.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

from ..errors import DataError

TEST_SPLIT = 0.2
"""The share of each class held out as the test set by default (``--test-split``)."""
SPLIT_SEED = 0
"""The split's own seed: the same held-out images for every run."""


def split(root: Path, samples: Sequence[tuple[str, int]], fraction: float = TEST_SPLIT,
          seed: int = SPLIT_SEED) -> tuple[list[tuple[str, int]], list[tuple[str, int]], dict]:
    """``samples`` (path, label) of the folder ``root`` as (training, held-out, record):
    ``fraction`` of each class held out, drawn with ``seed``; the record names the
    fraction, the seed, the held-out count and the SHA-256 of the held-out names."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise ValueError(f"the test split is a fraction between 0 and 1, got {fraction}")
    ordered = sorted(samples, key=lambda s: _name(root, s[0]))
    labels = [label for _, label in ordered]
    counts = np.bincount(labels)
    if counts.min() < 2:
        few = os.path.dirname(_name(root, ordered[labels.index(int(counts.argmin()))][0]))
        raise DataError(f"the class folder {root / few} holds {counts.min()} image; a split into training and test "
                        "images needs at least 2 per class")
    held = max(round(fraction * len(ordered)), len(counts))  # one image per class at least
    if held > len(ordered) - len(counts):
        raise DataError(f"--test-split {fraction} holds out {held} of {len(ordered)} images in {root}, leaving a "
                        "class no training image: choose a smaller fraction")
    keep, out = train_test_split(np.arange(len(ordered)), test_size=held, stratify=labels, random_state=seed)
    train = [ordered[i] for i in sorted(keep.tolist())]
    test = [ordered[i] for i in sorted(out.tolist())]
    record = {"fraction": fraction, "seed": seed, "held_out": len(test), "sha256": held_out_digest(root, test)}
    return train, test, record


def held_out_digest(root: Path, test: Sequence[tuple[str, int]]) -> str:
    """SHA-256 of the held-out files' names relative to ``root``, one a line, sorted."""
    names = sorted(_name(root, path) for path, _ in test)
    return hashlib.sha256("".join(n + "\n" for n in names).encode()).hexdigest()


def _name(root: Path, path: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()
