"""Mixed precision (``--amp``): which float type autocast computes in, and whether the
loss needs scaling.

bfloat16 wherever the device computes in it (CPUs, and CUDA GPUs from Ampere on): it has
float32's exponent range, so gradients neither underflow nor need a loss scale. float16
on older GPUs, with a GradScaler, whose check for infinite gradients reads a flag on the
host every step (a wait for the device that bfloat16 avoids).
"""
from __future__ import annotations

from contextlib import nullcontext

import torch


def dtype(device: torch.device) -> torch.dtype:
    """The float type autocast uses on ``device`` under ``--amp``."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, enabled: bool):
    """Autocast in :func:`dtype` when ``enabled``, else nothing."""
    return torch.autocast(device.type, dtype=dtype(device)) if enabled else nullcontext()


def scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """A GradScaler, enabled only where ``--amp`` computes in float16."""
    return torch.amp.GradScaler(device.type, enabled=enabled and dtype(device) == torch.float16)


def describe(device: torch.device, enabled: bool) -> str:
    """``bfloat16 autocast``, ``float16 autocast with loss scaling`` or ``float32``."""
    if not enabled:
        return "float32"
    t = dtype(device)
    return f"{str(t).removeprefix('torch.')} autocast{' with loss scaling' if t == torch.float16 else ''}"
