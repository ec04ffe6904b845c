"""The training recipe per data set: the paper's for CIFAR, a short one for the digits.

The learning rate is a function of the epoch alone (no scheduler state to save):
the base rate, divided by 10 at each milestone, a fraction of the epochs.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """A data set's default model and SGD hyper-parameters; ``milestones`` are
    fractions of ``epochs`` at which the learning rate falls tenfold."""

    model: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[float, ...] = (0.5, 0.75)


MID_IMAGES_SEEN = 300_000
"""Mid-size images: the epochs are about this many training images seen, over the training set's size."""
MID_EPOCHS = (15, 60)
"""... and no fewer than 15 and no more than 60."""


def recipe(data: str, model: str = "", size_class: str = "small", train_images: int = 0) -> Recipe:
    """Defaults for ``data``: CIFAR is He et al.'s and the paper's (SGD momentum 0.9,
    batch 128, lr 0.1 / 10 at 50% and 75% of 160 epochs, weight decay 1e-4 unless the
    ``model``'s architecture was published with another: 5e-4 for ResNeXt, as
    :func:`odenets.zoo.cifar_weight_decay` says), and so is that of an image folder of small images (``size_class`` 'small',
    CIFAR-like, at most 64x64). An image folder of mid-size images (at most 160x160)
    trains resnet18 at the images' own size (its ImageNet stem divides them by 4, as
    CIFAR's 32 px are to its ResNets' first stage), batch 128, lr 0.1, weight decay
    5e-4, for about :data:`MID_IMAGES_SEEN` images seen (between 15 and 60 epochs,
    more for fewer images); larger images get the ImageNet recipe (90 epochs, batch
    256, /10 at 1/3, 2/3). docs/image-folders.md says why."""
    if data == "digits":
        return Recipe("resnet20", epochs=10, batch_size=64, lr=0.05, weight_decay=5e-4)
    if data in ("cifar10", "cifar100") or size_class == "small":
        from odenets import zoo  # the zoo on first use, as in Config.check: settings import cheaply

        published = zoo.cifar_weight_decay(model)
        return Recipe("resnet20", epochs=160, batch_size=128, lr=0.1,
                      weight_decay=1e-4 if published is None else published)
    if size_class == "mid":
        low, high = MID_EPOCHS
        epochs = min(high, max(low, round(MID_IMAGES_SEEN / max(train_images, 1))))
        return Recipe("resnet18", epochs=epochs, batch_size=128, lr=0.1, weight_decay=5e-4)
    return Recipe("resnet18", epochs=90, batch_size=256, lr=0.1, milestones=(1 / 3, 2 / 3))


def lr_at(lr: float, epoch: int, epochs: int, milestones: tuple[float, ...]) -> float:
    """The rate of epoch ``epoch`` (0-based): lr / 10 per milestone reached,
    milestone m falling at epoch round(m * epochs), never before the second epoch."""
    return lr * 0.1 ** sum(epoch >= max(1, round(m * epochs)) for m in milestones)
