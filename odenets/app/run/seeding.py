"""Reproducible randomness: every random stream of a run derives from (seed, epoch, rank).

The data order of an epoch and each process's random state at the start of an epoch
are functions of the seed and the epoch alone, so a resumed run replays the epochs it
has left exactly as an uninterrupted run would. Within an epoch the random states are
saved in the checkpoint (see :func:`rng_state`).
"""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

BATCH_STREAM = 2
"""The stream of :class:`BatchSeeds`: batch b of epoch e is augmented from derive(seed, e, rank, 2, b)."""
ITEM_STREAM = 3
"""The stream of :class:`ItemSeeds`: item i of epoch e is drawn from derive(seed, e, rank, 3, i)."""


def derive(*keys: int) -> int:
    """A well-mixed 63-bit seed from a tuple of integers (seed, epoch, rank, stream)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The process's random states as tensors, numbers and lists (loadable with weights_only)."""
    version, keys, gauss = random.getstate()
    name, mt, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, torch.from_numpy(mt.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(keys), gauss],
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, mt, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, mt.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))


class ItemSeeds:
    """The seed of item i in the current epoch of ``sampler`` (an :class:`EpochSampler`):
    derive(seed, epoch, rank, ITEM_STREAM, i), for images read one at a time
    (:class:`odenets.app.data.batches.SeededItems`)."""

    def __init__(self, sampler: "EpochSampler"):
        self.sampler = sampler

    def __call__(self, i: int) -> int:
        s = self.sampler
        return derive(s.seed, s.epoch, s.rank, ITEM_STREAM, i)


class BatchSeeds:
    """The seed of batch b of the current epoch of ``sampler``, counted from the epoch's
    start even when it resumed part-way: derive(seed, epoch, rank, BATCH_STREAM, skip //
    batch_size + b), for batches augmented on the device (the tensor cache)."""

    def __init__(self, sampler: "EpochSampler", batch_size: int):
        self.sampler, self.batch_size = sampler, batch_size

    def __call__(self, b: int) -> int:
        s = self.sampler
        return derive(s.seed, s.epoch, s.rank, BATCH_STREAM, s.skip // self.batch_size + b)


class EpochSampler(Sampler[int]):
    """Indices of one epoch for one of ``world`` processes: a permutation drawn from
    (seed, epoch) (or 0..n-1 without ``shuffle``), padded by wrapping around to a multiple
    of ``world`` so that every process takes as many, then every world-th index from
    ``rank``. ``set_epoch(epoch, skip)`` starts the epoch after ``skip`` indices, where
    an interrupted epoch left off."""

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world: int = 1, shuffle: bool = True):
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world, shuffle
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _indices(self) -> list[int]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(derive(self.seed, self.epoch)))
        else:
            order = torch.arange(self.n)
        order = order.tolist()
        pad = -len(order) % self.world
        order += (order * (pad // max(len(order), 1) + 1))[:pad]
        return order[self.rank::self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.skip:])

    def __len__(self) -> int:
        return max(-(-self.n // self.world) - self.skip, 0)
