"""A data set held as one uint8 image tensor, served in whole batches on the training device.

The images (N x C x H x W, memory-mapped from the tensor cache or in memory) are
gathered a batch at a time, moved to the device as uint8 (a quarter of the bytes of
float32) and normalised, and for training augmented there (:mod:`batch_augment`); on
a GPU with room for them they are moved there once, so that no batch waits on the host.
"""
from __future__ import annotations

from typing import Callable, Collection, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .batch_augment import BatchAugment, normalise, to_device

DEVICE_SHARE = 0.25
"""Images are moved to a GPU once if they take at most this share of its free memory."""


class ImageTensors(Dataset):
    """Images and labels; item i is image i normalised, without augmentation, as
    ToTensor + Normalize give it; ``augment`` is what training batches get."""

    def __init__(self, images, labels: Sequence[int], mean: Sequence[float], std: Sequence[float],
                 augment: Optional[BatchAugment] = None):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, torch.as_tensor(labels, dtype=torch.long)
        self.mean, self.std, self.augment = tuple(mean), tuple(std), augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x, y = self.batch([i], self.device)
        return x[0], int(y[0])

    def subset(self, indices: Sequence[int]) -> "ImageTensors":
        """The images at ``indices`` (copied out of a memory map), with this set's
        normalisation and augmentation."""
        images = self.images[torch.as_tensor(indices)] if isinstance(self.images, torch.Tensor) else \
            torch.from_numpy(np.ascontiguousarray(self.images[np.asarray(indices)]))
        return ImageTensors(images, self.labels[torch.as_tensor(indices)].tolist(), self.mean, self.std, self.augment)

    @property
    def device(self) -> torch.device:
        return self.images.device if isinstance(self.images, torch.Tensor) else torch.device("cpu")

    def to(self, device: torch.device) -> "ImageTensors":
        """Move the images (and labels) to a GPU ``device`` when they fit in
        :data:`DEVICE_SHARE` of its free memory; elsewhere they stay where they are."""
        device = torch.device(device)
        if device.type == "cuda" and self.device != device:
            if int(np.prod(self.images.shape)) <= DEVICE_SHARE * torch.cuda.mem_get_info(device)[0]:
                images = self.images if isinstance(self.images, torch.Tensor) else \
                    torch.from_numpy(np.array(self.images))  # a writable copy of the memory map
                self.images, self.labels = images.to(device), self.labels.to(device)
        return self

    def take(self, indices: Union[Sequence[int], torch.Tensor], device: torch.device) -> torch.Tensor:
        """The uint8 images at ``indices``, on ``device``."""
        if isinstance(self.images, torch.Tensor):
            rows = self.images[torch.as_tensor(indices).to(self.images.device)]
        else:
            rows = torch.from_numpy(self.images[np.asarray(indices)])
        return rows.to(device, non_blocking=True)

    def batch(self, indices: Union[Sequence[int], torch.Tensor], device: torch.device,
              generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (float32, normalised; augmented when a ``generator`` is given) and labels on ``device``."""
        images = self.take(indices, device)
        if generator is not None and self.augment is not None:
            x = self.augment(images, generator)
        else:
            x = normalise(images, self.mean, self.std)
        labels = self.labels[torch.as_tensor(indices).to(self.labels.device)]
        return x, labels.to(device, non_blocking=True)


class Batches:
    """Re-iterable batches of ``data`` in the order of ``order`` (a sampler or a range), on
    ``device``. With ``seed``, batch b is augmented with a generator seeded by ``seed(b)``."""

    def __init__(self, data: ImageTensors, order: Collection[int], batch_size: int, device: torch.device,
                 seed: Optional[Callable[[int], int]] = None):
        self.data, self.order, self.batch_size, self.device, self.seed = data, order, batch_size, device, seed

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = to_device(torch.as_tensor(list(self.order), dtype=torch.long), self.data.labels.device)
        for b, start in enumerate(range(0, len(order), self.batch_size)):
            generator = torch.Generator().manual_seed(self.seed(b)) if self.seed is not None else None
            yield self.data.batch(order[start:start + self.batch_size], self.device, generator)
