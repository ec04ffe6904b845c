"""A forward and a backward pass of every registered model on a small batch (CPU)."""
import pytest
import torch

from odenets import zoo

IMAGENET = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.list_models())
def test_forward_backward(name):
    torch.manual_seed(0)
    model = zoo.create(name, num_classes=7)
    size = 64 if name.removeprefix("lm_") in IMAGENET else 32  # ImageNet models at a small resolution
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 7)
    out.square().mean().backward()
    drops = any(getattr(m, "drops_steps", False) for m in model.modules())  # whole blocks dropped in training
    for key, p in model.named_parameters():  # every parameter of a zoo model is used, but a dropped block's
        if drops and ".fns." in key and p.grad is None:
            continue
        assert p.grad is not None, f"{key} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{key} has a non-finite gradient"
