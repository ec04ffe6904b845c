"""Small device tensors read on the host one step late, so that reading them never makes
the host wait for the work it has just launched.

Reading a CUDA tensor's value (``.item()``, ``.tolist()``) waits for every kernel queued
before it: read right after the forward pass, it keeps the host from launching the
backward pass until the forward one is done, and the GPU idles while the host launches
each step. :meth:`LateRead.push` instead starts an asynchronous copy into pinned host
memory and marks it with a CUDA event; the copy is read at the next push (or at
:meth:`LateRead.flush`), by which time the device has long finished it. On a CPU there
is nothing to wait for; the values come back one push late all the same, so that the
training loop reads alike everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch


@dataclass
class Reading:
    """Values on their way to the host, and what the caller tagged them with."""
    host: torch.Tensor
    done: Optional[torch.cuda.Event]
    tag: Any

    def values(self) -> list[float]:
        """The values, waiting only for their own copy."""
        if self.done is not None:
            self.done.synchronize()
        return self.host.tolist()


class LateRead:
    """Holds one :class:`Reading` back: each push hands back the one before."""

    def __init__(self, device: torch.device):
        self.cuda = torch.device(device).type == "cuda"
        self.pending: Optional[Reading] = None

    def push(self, values: torch.Tensor, tag: Any = None) -> Optional[Reading]:
        """Start copying ``values`` to the host; return the reading pushed before (None at first)."""
        values = values.detach()
        if self.cuda:
            host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            host.copy_(values, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
        else:
            host, done = values, None
        before, self.pending = self.pending, Reading(host, done, tag)
        return before

    def flush(self) -> Optional[Reading]:
        """The reading not yet handed back, if any."""
        before, self.pending = self.pending, None
        return before
