"""Time per batch and per epoch of resnet20 on CIFAR-10: PIL loader against the tensor cache.

    python benchmarks/bench_data.py --data-dir ../shared/data/cifar10-jpeg
    python benchmarks/bench_data.py --data-dir DIR --device cuda --amp --compile --batches 400
    python benchmarks/bench_data.py --device cuda --amp --compile-mode reduce-overhead --channels-last --loaders cache

Both loaders feed the same model, side by side in one process: chunks of ``--chunk``
batches taken in turn from each, so that drifts in the machine's load hit both alike.
For each it reports the wall-clock time per batch of the data alone (a batch on the
device, ready to use) and of a whole training step (data, forward, backward, SGD step:
``odenets train``'s own step, :class:`odenets.app.run.train_step.TrainStep`, its loss read one
step late), the time of an epoch at that rate, and the ratios. The
tensor cache's one-time decoding is timed apart (it is skipped when the cache is
already built; ``$ODENETS_CACHE`` moves it). On a GPU, "data share" says how much of a
step the GPU waits on the data: its data time over its step time.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader

from odenets import zoo
from odenets.app.data import datasets as data
from odenets.app.data.image_tensors import Batches
from odenets.app.run import seeding
from odenets.app.run.distributed import Context
from odenets.app.run.train_step import TrainStep


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def endless(make: Callable[[int], Iterator]) -> Iterator:
    """Batches of epoch 0, 1, ... without end."""
    epoch = 0
    while True:
        yield from make(epoch)
        epoch += 1


def loaders(root: str, batch: int, device: torch.device, workers: int, names: list[str]) -> dict[str, Iterator]:
    """The loaders ``names`` (pil, cache), each an endless iterator of (x, y) on ``device``."""
    sources = {}
    if "pil" in names:
        sources["pil"] = pil_loader(root, batch, device, workers)
    if "cache" in names:
        started = time.perf_counter()
        cached = data.load("cifar10", root, loader="cache")
        print(f"tensor cache: loaded (decoded if not yet built) in {time.perf_counter() - started:.1f} s", flush=True)
        cache_sampler = seeding.EpochSampler(len(cached.train), seed=0)
        batches = Batches(cached.train.to(device), cache_sampler, batch, device,
                          lambda b: seeding.derive(0, cache_sampler.epoch, 0, 2, b))

        def cache_epoch(epoch: int) -> Iterator:
            cache_sampler.set_epoch(epoch)
            yield from batches

        sources["cache"] = endless(cache_epoch)
    return sources


def pil_loader(root: str, batch: int, device: torch.device, workers: int) -> Iterator:
    """The PIL pipeline: a DataLoader over the JPEG files, endless."""
    pil = data.load("cifar10", root, loader="pil")
    sampler = seeding.EpochSampler(len(pil.train), seed=0)
    rng = torch.Generator()

    def pil_epoch(epoch: int) -> Iterator:
        sampler.set_epoch(epoch)
        rng.manual_seed(epoch)
        for x, y in DataLoader(pil.train, batch, sampler=sampler, num_workers=workers, generator=rng,
                               pin_memory=device.type == "cuda"):
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    return endless(pil_epoch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="../shared/data/cifar10-jpeg")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--batches", type=int, default=200, help="timed training steps per loader")
    p.add_argument("--chunk", type=int, default=10, help="batches taken from one loader before the other's turn")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--compile-mode", default="default", help="torch.compile's mode (turns --compile on)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--loaders", nargs="+", choices=("pil", "cache"), default=["pil", "cache"])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader processes of the PIL loader")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    compiled = args.compile or args.compile_mode != "default"
    torch.manual_seed(0)
    memory_format = torch.channels_last if args.channels_last else torch.preserve_format
    model = zoo.create(args.model, num_classes=10).to(device, memory_format=memory_format)
    net = torch.compile(model, mode=args.compile_mode) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    train = TrainStep(net, optimizer, Context(device), args.amp, args.channels_last)
    sources = loaders(args.data_dir, args.batch, device, args.workers, args.loaders)

    def timed(name: str, n: int, step: bool) -> float:
        sync(device)
        started = time.perf_counter()
        for _ in range(n):
            x, y = next(sources[name])
            if step:
                train(x, y)
        if step:  # the last step's loss, as odenets train reads it at the end of an epoch
            train.flush().values()
        sync(device)
        return (time.perf_counter() - started) / n

    for name in sources:  # warm-up: compilation, first touches of the cache, allocator
        timed(name, 3, True)
    times = {(name, kind): [] for name in sources for kind in ("data", "step")}
    for _ in range(max(args.batches // args.chunk, 1)):
        for name in sources:
            times[name, "step"].append(timed(name, args.chunk, True))
            times[name, "data"].append(timed(name, max(args.chunk // 2, 1), False))
    steps = -(-50_000 // args.batch)
    print(f"{args.model} on CIFAR-10, batch {args.batch}, {device}{' amp' if args.amp else ''}"
          f"{f' compile ({args.compile_mode})' if compiled else ''}{' channels-last' if args.channels_last else ''}, "
          f"{torch.get_num_threads()} threads, "
          f"{args.batches} timed steps per loader in chunks of {args.chunk}; median of chunks")
    median = {key: statistics.median(v) for key, v in times.items()}
    print(f"{'loader':8} {'data ms/batch':>14} {'step ms/batch':>14} {'data share':>11} {'epoch s':>9}")
    for name in sources:
        d, s = median[name, "data"], median[name, "step"]
        print(f"{name:8} {1000 * d:14.2f} {1000 * s:14.2f} {d / s:10.1%} {s * steps:9.1f}")
    if len(sources) == 2:
        print(f"pil / cache: data {median['pil', 'data'] / median['cache', 'data']:.1f}x, "
              f"step {median['pil', 'step'] / median['cache', 'step']:.3f}x")


if __name__ == "__main__":
    main()
