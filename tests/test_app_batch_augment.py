"""The batch augmentation is torchvision's PIL pipeline (RandomCrop with padding,
RandomHorizontalFlip, ToTensor, Normalize): the same image at each offset and flip,
and the same distribution of offsets and flips."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torchvision import transforms as T
from torchvision.transforms import functional as TF

from odenets.app.data.batch_augment import BatchAugment, normalise

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
PAD = 4


def image(h=8, w=7, seed=0):
    """A uint8 image (h x w x 3) with no zero pixel, so that no crop looks like another."""
    return np.random.default_rng(seed).integers(1, 256, (h, w, 3), dtype=np.uint8)


def pil_pipeline(pixels, top, left, mirrored):
    """torchvision on a PIL image: pad, crop at (top, left), maybe mirror, ToTensor, Normalize."""
    h, w = pixels.shape[:2]
    x = TF.crop(TF.pad(Image.fromarray(pixels), PAD), top, left, h, w)
    x = TF.hflip(x) if mirrored else x
    return TF.normalize(TF.to_tensor(x), MEAN, STD)


def batch_of(pixels, n=1):
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).repeat(n, 1, 1, 1)


def all_outcomes(pixels):
    """Every (top, left, mirrored) once, as draws for one batch."""
    grid = [(t, l, m) for t in range(2 * PAD + 1) for l in range(2 * PAD + 1) for m in (False, True)]
    top, left, mirrored = (torch.tensor(v) for v in zip(*grid))
    return grid, (top, left, mirrored)


def test_each_crop_and_flip_equals_torchvisions_bit_for_bit():
    pixels = image()
    grid, draws = all_outcomes(pixels)
    out = BatchAugment(PAD, True, MEAN, STD)(batch_of(pixels, len(grid)), torch.Generator(), draws)
    for i, (top, left, mirrored) in enumerate(grid):
        assert torch.equal(out[i], pil_pipeline(pixels, top, left, mirrored)), (top, left, mirrored)


def test_normalise_is_to_tensor_and_normalize():
    pixels = image(5, 6)
    expect = TF.normalize(TF.to_tensor(Image.fromarray(pixels)), MEAN, STD)
    assert torch.equal(normalise(batch_of(pixels), MEAN, STD)[0], expect)


def identify(pixels, outputs):
    """For each output image, the index of the (top, left, mirrored) outcome it is."""
    grid, draws = all_outcomes(pixels)
    candidates = torch.stack([pil_pipeline(pixels, *g) for g in grid]).flatten(1)
    distances = torch.cdist(outputs.flatten(1), candidates, compute_mode="donot_use_mm_for_euclid_dist")
    assert (distances.min(1).values < 1e-4).all()
    return distances.argmin(1).numpy(), len(grid)


@pytest.mark.parametrize("flip", [True, False])
def test_offsets_and_flips_are_distributed_as_torchvisions(flip):
    """n draws of each pipeline on one image: every outcome's frequency is 1/81 (offsets)
    times 1/2 (flip) in both, and the two samples agree (chi-square tests)."""
    n, pixels = 4000, image()
    torch.manual_seed(0)
    pil = T.Compose([T.RandomCrop(pixels.shape[:2], padding=PAD), *([T.RandomHorizontalFlip()] if flip else []),
                     T.ToTensor(), T.Normalize(MEAN, STD)])
    theirs = torch.stack([pil(Image.fromarray(pixels)) for _ in range(n)])
    ours = BatchAugment(PAD, flip, MEAN, STD)(batch_of(pixels, n), torch.Generator().manual_seed(1))
    (a, k), (b, _) = identify(pixels, theirs), identify(pixels, ours)
    counts = np.stack([np.bincount(a, minlength=k), np.bincount(b, minlength=k)])
    if not flip:  # never mirrored: odd outcomes (mirrored) never seen
        assert counts[:, 1::2].sum() == 0
        counts = counts[:, ::2]
    for sample in counts:
        assert stats.chisquare(sample).pvalue > 1e-3
    assert stats.chi2_contingency(counts).pvalue > 1e-3


def test_draws_come_from_the_generator_alone():
    augment = BatchAugment(PAD, True, MEAN, STD)
    x = batch_of(image(), 16)
    a = augment(x, torch.Generator().manual_seed(5))
    torch.manual_seed(123)  # the global generator plays no part
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, augment(x, torch.Generator().manual_seed(6)))
