"""Images of any PIL mode as 8-bit grayscale or RGB, and what a folder's images are.

PIL's own ``convert`` clips high-depth images: a 16-bit grayscale PNG (mode ``I;16``,
values 0..65535) becomes almost all 255. Here 16- and 32-bit integer images are scaled
from 0..65535 and float images from 0..1 to 0..255 before any other conversion; every
other mode (1, L, P, LA, RGBA, CMYK, ...) goes through PIL's conversion, which drops an
alpha channel and maps a palette through its colours.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

BAD_IMAGE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
"""What PIL raises for a file that is not a readable image: truncated, corrupt, not an
image, a broken symlink, or one too large to decode safely (more than twice
Image.MAX_IMAGE_PIXELS pixels, PIL's guard against decompression bombs; the message
names the limit)."""

GRAY = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
"""Modes without colour: a folder of these gets a 1-channel input."""

SMALL = 64
"""Images of at most SMALL x SMALL pixels are small: CIFAR-like, cached as tensors."""


def channels_of(image) -> int:
    """1 for a grayscale image (a palette of grays counts as grayscale), else 3."""
    if image.mode in GRAY:
        return 1
    if image.mode == "P":
        palette = np.asarray(image.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
        return 1 if (palette == palette[:, :1]).all() else 3
    return 3


def convert(image, channels: int):
    """``image`` as mode ``L`` (``channels`` 1) or ``RGB`` (3), high-depth modes scaled, not clipped."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if image.mode == "F" or image.mode == "I" or image.mode.startswith("I;16"):
        full = 1.0 if image.mode == "F" else 65535.0
        pixels = np.asarray(image, dtype=np.float64) * (255.0 / full)
        image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")
    target = "L" if channels == 1 else "RGB"
    if image.mode == target:
        return image.copy()  # loaded, so that it outlives the file
    if channels == 1 and image.mode not in ("1", "L", "LA", "P"):
        image = image.convert("RGB")  # PIL converts only some modes straight to L
    return image.convert(target)


@dataclass(frozen=True)
class Survey:
    """What the images of a folder are: channels, the commonest size, how many looked at."""

    channels: int
    height: int
    width: int
    looked_at: int

    @property
    def small(self) -> bool:
        return self.looked_at > 0 and self.height <= SMALL and self.width <= SMALL


def survey(paths: Sequence[str], limit: int = 64) -> Survey:
    """The channels (3 if any image looked at has colour) and the commonest size of up
    to ``limit`` images spread evenly over ``paths``; only their headers are read.
    Images that cannot be opened are left to the loader to report."""
    if not paths:
        raise ValueError("no images to survey")
    n = min(limit, len(paths))
    picks = sorted({round(i * (len(paths) - 1) / max(n - 1, 1)) for i in range(n)})
    channels, sizes = 1, Counter()
    for i in picks:
        try:
            with Image.open(paths[i]) as image:
                channels = max(channels, channels_of(image))
                sizes[image.height, image.width] += 1
        except BAD_IMAGE:
            continue
    if not sizes:
        return Survey(3, 0, 0, 0)
    (height, width), _ = sizes.most_common(1)[0]
    return Survey(channels, height, width, sum(sizes.values()))
