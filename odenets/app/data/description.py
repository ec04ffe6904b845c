"""What a data set is, found once when it is opened: the record a run's plan, its
settings and its checks read.

The images' size decides the recipe (:mod:`odenets.app.settings.recipe`) through
:attr:`Description.size_class`: ``small`` up to 64x64 (CIFAR's kind), ``mid`` up to
160x160 (trained at their own size), ``large`` above (ImageNet's recipe).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Optional

from .image_modes import SMALL

MID = 160
"""Images of at most MID x MID pixels (and more than SMALL) are mid-size: trained at their own size."""


@dataclass(frozen=True)
class Description:
    """A data set as opened: ``kind`` (digits, cifar10, cifar100, imagefolder), where it
    lives, its classes, channels, the images' commonest size (height, width), the number
    of training and test images, where the test set comes from (``test_set``), the
    split drawn for a folder without one (``split``: fraction, seed, held-out count and
    the SHA-256 of the held-out files' names) and what the images decided (``chosen``:
    augmentation, loader, size trained at)."""

    kind: str
    root: str
    classes: tuple[str, ...]
    channels: int
    size: tuple[int, int]
    train_images: int
    test_images: int
    test_set: str
    split: Optional[dict] = None
    chosen: dict = field(default_factory=dict)

    @property
    def size_class(self) -> str:
        """``small`` (at most 64x64), ``mid`` (at most 160x160) or ``large``."""
        side = max(self.size)
        if not side:  # no image could be opened: read through PIL, which names them
            return "large"
        return "small" if side <= SMALL else "mid" if side <= MID else "large"

    def record(self) -> dict:
        """The description as JSON-ready values, for config.json and result.json."""
        values = asdict(self)
        values.update(classes=list(self.classes), size=list(self.size))
        return values

    def with_counts(self, train: int, test: int, chosen: dict) -> "Description":
        return replace(self, train_images=train, test_images=test, chosen=chosen)
