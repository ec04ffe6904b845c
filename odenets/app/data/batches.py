"""Batches of images read one at a time (through PIL, or torchvision's arrays), seeded
per image and placed on the training device.

:class:`SeededItems` makes item i with torch's CPU generator seeded by ``item_seed(i)``,
the process's own random state untouched: an image's random crop and flip are then the
same whichever worker process loads it and wherever in the epoch a run resumed, so a
run is the same with any ``--workers`` and resumes exactly part-way through an epoch.
(The loader's workers take a copy of the seed function, and of the sampler it reads,
as they are when an epoch's iteration starts.)
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset


class SeededItems(Dataset):
    """``dataset`` whose item i is made with torch's generator seeded by ``item_seed(i)``."""

    def __init__(self, dataset: Dataset, item_seed: Callable[[int], int]):
        self.dataset, self.item_seed = dataset, item_seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        state = torch.get_rng_state()
        torch.default_generator.manual_seed(self.item_seed(i))
        try:
            return self.dataset[i]
        finally:
            torch.set_rng_state(state)


class OnDevice:
    """A DataLoader's batches, moved to ``device`` (without waiting, from pinned memory)."""

    def __init__(self, loader: DataLoader, device: torch.device):
        self.loader, self.device = loader, torch.device(device)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
