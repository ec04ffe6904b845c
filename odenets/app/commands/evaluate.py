"""Test loss and accuracy, and ``odenets eval CHECKPOINT``."""
from __future__ import annotations

import argparse
import json
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..run import distributed
from ..run.distributed import Context
from ..run.precision import autocast


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, ctx: Context, amp: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the whole test set (all processes' shares of
    it, in batches on the device: :meth:`Data.test_batches`)."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=ctx.device)
    for x, y in loader:
        with autocast(ctx.device, amp):
            logits = model(x)
        sums[0] += F.cross_entropy(logits.float(), y, reduction="sum")
        sums[1] += (logits.argmax(1) == y).sum()
        sums[2] += len(y)
    model.train(was_training)
    loss, correct, count = distributed.all_sum(ctx, sums).tolist()
    return loss / max(count, 1), correct / max(count, 1)


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="test loss and accuracy of a checkpoint",
                              description="Evaluate a checkpoint written by `odenets train` on its data set's "
                                          "test split.")
    p.add_argument("checkpoint", help="a checkpoint.pt file (or the --out folder holding one)")
    p.add_argument("--data-dir", metavar="DIR", help="where the data set lives (default: as in training)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", help="default: cuda when available, else cpu")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data import datasets as data
    from ..run import models

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    model, cfg, state = models.from_checkpoint(args.checkpoint)
    path = state["path"]
    if args.data_dir:
        cfg.data_dir = args.data_dir
    ctx = distributed.setup(args.device)
    ds = data.load(cfg.data, cfg.data_dir, on_bad_image=cfg.on_bad_image, image_size=cfg.image_size,
                   test_split=cfg.test_split)
    models.check_test_set(state, ds, cfg.data, cfg.data_dir)
    model.to(ctx.device)
    loss, acc = evaluate(model, ds.test_batches(args.batch_size, ctx.device, ctx.rank, ctx.world, args.workers), ctx,
                         args.amp)
    result = {"checkpoint": str(path), "model": cfg.model, "solver": cfg.label, "data": cfg.data,
              "epoch": state["epoch"], "test_loss": loss, "test_acc": acc, "test_images": len(ds.test)}
    if ctx.main:
        print(json.dumps(result) if args.json else
              f"{cfg.model} ({cfg.label}) on {cfg.data}, epoch {state['epoch']}: test loss {loss:.4f}, "
              f"accuracy {100 * acc:.2f}% of {len(ds.test)} images")
    return 0
