"""The CIFAR augmentation on whole uint8 batches, on the device that trains.

Per image, as torchvision's ``RandomCrop(size, padding=pad)``, ``RandomHorizontalFlip()``,
``ToTensor()`` and ``Normalize(mean, std)`` do on a PIL image: zero padding by ``pad``,
a crop at offsets drawn uniformly from 0..2 pad, a mirror image with probability 1/2,
scaling to [0, 1] and per-channel normalisation, in the same floating-point operations.
The draws come from a CPU ``torch.Generator`` the caller seeds, so a batch's
augmentation is a function of that seed alone, on any device.
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import torch
import torch.nn.functional as F


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """CPU tensor ``t`` on ``device``; to a GPU through pinned memory, without the host waiting."""
    if torch.device(device).type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 N x C x H x W -> float32 ``(x / 255 - mean) / std``, as ToTensor + Normalize."""
    m, s = _stats(tuple(mean), tuple(std), images.device)
    return images.to(torch.float32).div(255).sub(m).div(s)


@functools.lru_cache(maxsize=16)
def _stats(mean: tuple, std: tuple, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """mean and std as C x 1 x 1 tensors on ``device``, made once (not copied there every batch)."""
    return tuple(torch.tensor(v, dtype=torch.float32, device=device).view(-1, 1, 1) for v in (mean, std))


class BatchAugment:
    """Random pad-and-crop (and, with ``flip``, mirror) of uint8 batches, then :func:`normalise`."""

    def __init__(self, pad: int, flip: bool, mean: Sequence[float], std: Sequence[float]):
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.pad, self.flip, self.mean, self.std = pad, flip, tuple(mean), tuple(std)

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each image's crop offsets (top, left, in 0..2 pad) and whether it is mirrored."""
        top = torch.randint(0, 2 * self.pad + 1, (n,), generator=generator)
        left = torch.randint(0, 2 * self.pad + 1, (n,), generator=generator)
        mirrored = torch.rand(n, generator=generator) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
        return top, left, mirrored

    def __call__(self, images: torch.Tensor, generator: torch.Generator,
                 draws: Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        """``images`` (uint8 N x C x H x W) augmented with ``draws``, by default drawn from ``generator``."""
        n, c, h, w = images.shape
        draws = torch.stack([t.long() for t in draws or self.draw(n, generator)])
        top, left, mirrored = to_device(draws, images.device)
        padded = F.pad(images, (self.pad,) * 4)
        rows = top[:, None] + torch.arange(h, device=images.device)
        cols = left[:, None] + torch.arange(w, device=images.device)
        cols = torch.where(mirrored[:, None].bool(), cols.flip(1), cols)
        batch = torch.arange(n, device=images.device)[:, None, None, None]
        chans = torch.arange(c, device=images.device)[None, :, None, None]
        crops = padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]
        return normalise(crops, self.mean, self.std)
