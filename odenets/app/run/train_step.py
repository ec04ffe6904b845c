"""One training step, launched without waiting for the device.

Forward under autocast (:mod:`precision`), cross-entropy, backward, the optimizer's
step. The step's statistics (summed loss, correct predictions, images, and a flag for
a stop requested by this process), summed over the processes, come back one step late
(:class:`LateRead`): the host launches step s + 1 while the device still runs step s,
and nothing in a step reads a value off a GPU (the float16 GradScaler's check for
infinite gradients aside, which :mod:`precision` avoids wherever bfloat16 is there).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed, precision
from .distributed import Context
from .late_read import LateRead, Reading

STATS = ("loss", "correct", "count", "stop")
"""What a step's reading holds, in order: the loss summed over the batch, the correct
predictions, the images, and how many processes asked to stop."""


class TrainStep:
    """``step(x, y, stop, tag)`` trains on one batch and returns the reading of the step
    before (None for the first); :meth:`flush` returns the last one. ``scaler``: the
    run's GradScaler (restored from a checkpoint), by default a new one for ``amp``."""

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer, ctx: Context, amp: bool = False,
                 channels_last: bool = False, scaler: Optional[torch.amp.GradScaler] = None):
        self.net, self.optimizer, self.ctx, self.amp = net, optimizer, ctx, amp
        self.scaler = scaler or precision.scaler(ctx.device, amp)
        self.memory_format = torch.channels_last if channels_last else torch.preserve_format
        self.reads = LateRead(ctx.device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, stop: bool = False, tag: Any = None) -> Optional[Reading]:
        device = self.ctx.device
        x = x.to(device, non_blocking=True, memory_format=self.memory_format)
        y = y.to(device, non_blocking=True)
        with precision.autocast(device, self.amp):
            logits = self.net(x)
            loss = F.cross_entropy(logits, y)
        n = float(len(y))
        stats = torch.stack([loss.detach().float() * n, (logits.detach().argmax(1) == y).sum().float(),
                             torch.full((), n, device=device), torch.full((), float(stop), device=device)])
        before = self.reads.push(distributed.all_sum(self.ctx, stats), tag)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return before

    def flush(self) -> Optional[Reading]:
        """The last step's reading, if not handed back yet."""
        return self.reads.flush()
