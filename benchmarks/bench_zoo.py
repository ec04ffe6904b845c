"""Throughput of zoo models against their references, and a table of the whole zoo.

    python benchmarks/bench_zoo.py                      # the two comparisons below
    python benchmarks/bench_zoo.py --table --models 'resnet*' --repeats 3

Comparisons (forward + backward, images/s, median of interleaved runs in one process):
zoo resnet50 (euler) against torchvision's resnet50 at 224x224 (target: within 3%),
and resnet20 under the LM step against resnet20 at 32x32 (target: within 5%). By default the clock is
the process's CPU time on one thread, which other processes sharing the machine barely
disturb; ``--clock wall --threads N`` measures wall-clock throughput, ``--compile`` the
models under torch.compile (both of each pair). ``--table`` prints, for
every selected model, its parameters, FLOPs per image counted by
torch.utils.flop_counter.FlopCounterMode (a multiply-add counts 2), and throughput.
"""
from __future__ import annotations

import argparse
import fnmatch
import statistics
import time
from typing import Callable

import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from odenets import zoo

IMAGENET = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}


def resolution(name: str) -> int:
    return 224 if name.removeprefix("lm_") in IMAGENET else 32


def train_step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """One forward + backward pass (gradients zeroed first), as a closure to time."""
    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(x).logsumexp(dim=1).mean().backward()
    return step


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def interleaved(steps: dict[str, Callable[[], None]], repeats: int, warmup: int,
                clock: Callable[[], float] = time.process_time) -> dict[str, float]:
    """Median seconds per call of each step, the steps taking turns so that drifts in the
    machine's load hit all of them alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = clock()
            step()
            times[name].append(clock() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def compare(pairs: dict[str, tuple[nn.Module, nn.Module, int, int]], repeats: int, warmup: int,
            clock: Callable[[], float], compiled: bool = False) -> None:
    for label, (model, reference, batch, size) in pairs.items():
        x = torch.randn(batch, 3, size, size)
        if compiled:
            model, reference = torch.compile(model), torch.compile(reference)
        t = interleaved({"model": train_step(model.train(), x), "reference": train_step(reference.train(), x)},
                        repeats, warmup, clock)
        ratio = t["reference"] / t["model"]  # throughput ratio model / reference
        print(f"{label}: {batch / t['model']:.2f} vs {batch / t['reference']:.2f} images/s "
              f"(batch {batch} at {size}x{size}); throughput ratio {ratio:.3f} ({(ratio - 1) * 100:+.1f}%)")


def flops_per_image(model: nn.Module, size: int) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.randn(1, 3, size, size))
    return counter.get_total_flops()


def table(names: list[str], batch: int, repeats: int, warmup: int, clock: Callable[[], float]) -> None:
    print(f"{'model':22s} {'params':>12s} {'GFLOPs/img':>11s} {'res':>4s} {'img/s (fwd+bwd)':>16s}")
    for name in names:
        model = zoo.create(name)
        size = resolution(name)
        params = sum(p.numel() for p in model.parameters())
        try:
            flops = flops_per_image(model, size)
            x = torch.randn(batch, 3, size, size)
            t = interleaved({name: train_step(model.train(), x)}, repeats, warmup, clock)[name]
        except Exception as err:  # one broken model should not hide the others' numbers
            print(f"{name:22s} {params:12,d}  failed: {type(err).__name__}: {err}", flush=True)
            continue
        print(f"{name:22s} {params:12,d} {flops / 1e9:11.3f} {size:4d} {batch / t:16.2f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per model (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per model first")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size (default: 8 at 224x224 and 128 at 32x32 for the comparisons, 8 for --table)")
    parser.add_argument("--table", action="store_true", help="print params, FLOPs and throughput of the zoo")
    parser.add_argument("--models", nargs="*", default=["*"], help="shell patterns selecting models for --table")
    parser.add_argument("--skip-compare", action="store_true", help="only the table")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (0: torch's default)")
    parser.add_argument("--compile", action="store_true", help="time the comparisons under torch.compile")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: process CPU time (robust on a shared machine); wall: wall-clock time")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = CLOCKS[args.clock]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.clock} clock, "
          f"median of {args.repeats} interleaved runs{', compiled' if args.compile else ''}")
    if not args.skip_compare:
        compare({"zoo resnet50 vs torchvision resnet50": (zoo.create("resnet50"), torchvision.models.resnet50(),
                                                          args.batch or 8, 224),
                 "resnet20 lm vs euler": (zoo.create("resnet20", solver="lm"), zoo.create("resnet20"),
                                          args.batch or 128, 32)},
                args.repeats, args.warmup, clock, args.compile)
    if args.table:
        names = [n for n in zoo.list_models() if any(fnmatch.fnmatch(n, p) for p in args.models)]
        table(names, args.batch or 8, args.repeats, args.warmup, clock)


if __name__ == "__main__":
    main()
