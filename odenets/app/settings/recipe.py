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


def recipe(data: str, model: str = "", small_images: bool = False) -> Recipe:
    """Defaults for ``data``: CIFAR is He et al.'s and the paper's (SGD momentum 0.9,
    batch 128, lr 0.1 / 10 at 50% and 75% of 160 epochs, weight decay 1e-4 unless the
    ``model``'s architecture was published with another: 5e-4 for ResNeXt, its ``lm_``
    version included, as :func:`odenets.zoo.cifar_weight_decay` says), and so is that of
    an image folder of ``small_images`` (CIFAR-like); other image folders get the
    ImageNet one (90 epochs, batch 256, /10 at 1/3, 2/3)."""
    if data == "digits":
        return Recipe("resnet20", epochs=10, batch_size=64, lr=0.05, weight_decay=5e-4)
    if data in ("cifar10", "cifar100") or small_images:
        from odenets import zoo  # the zoo on first use, as in Config.check: settings import cheaply

        published = zoo.cifar_weight_decay(model)
        return Recipe("resnet20", epochs=160, batch_size=128, lr=0.1,
                      weight_decay=1e-4 if published is None else published)
    return Recipe("resnet18", epochs=90, batch_size=256, lr=0.1, milestones=(1 / 3, 2 / 3))


def lr_at(lr: float, epoch: int, epochs: int, milestones: tuple[float, ...]) -> float:
    """The rate of epoch ``epoch`` (0-based): lr / 10 per milestone reached,
    milestone m falling at epoch round(m * epochs), never before the second epoch."""
    return lr * 0.1 ** sum(epoch >= max(1, round(m * epochs)) for m in milestones)
