"""What memory-free training with exact reversal costs: memory and time.

Momentum and RevNet networks of MLP blocks on a state ``--width`` wide (default 32;
momentum: 32-64-32 per step; revnet: F and G 16-32-16 on the two halves of the state),
batch ``--batch``, float32, one thread.

- Memory: the bytes of the tensors autograd saves in the forward pass (counted with
  saved_tensors_hooks) at each depth, for plain backprop, ``memory_efficient=True`` and,
  for momentum, momentumnet's memory-saving ``MomentumNet(use_backprop=False)``; and, from
  the smallest to the largest depth, the growth of ``memory_efficient=True`` in bits a
  number a step (the bits exactness stores; log2(1/gamma) beside it).
- Time: the process's CPU time of a training step (forward, backward of sum(u_N^2)) at
  ``--time-depth``, the median over interleaved repeats of each contender's time divided
  by plain backprop's in the same repeat, and of ``memory_efficient=True`` divided by
  momentumnet's memory-saving mode. Beside them, the recompute floor: each step's input
  stored (no inversion, no carrier), each step re-run with autograd and differentiated
  alone, in a plain loop. It evaluates and differentiates the functions as often as
  ``memory_efficient=True`` does; what it costs over plain backprop is the price of
  re-evaluating them a step at a time, which no memory-free method avoids (it also re-runs
  each step's combination of them, which the schemes' hand-written vjps leave out).

    python benchmarks/bench_reversible.py
    python benchmarks/bench_reversible.py --depths 10,100,1000 --time-depth 100 --repeats 20
    python benchmarks/bench_reversible.py --width 512 --batch 256 --depths 10,100 --repeats 10
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from typing import Callable

import torch
from momentumnet import MomentumNet
from torch import nn

from odenets import ODENet


def mlp(d: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, d))


def contenders(solver: str, depth: int, gamma: float, width: int = 32) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    if solver == "revnet":
        pairs = [(mlp(width // 2, width), mlp(width // 2, width)) for _ in range(depth)]
        return {"plain": ODENet(pairs, "revnet"), "memory_efficient": ODENet(pairs, "revnet", memory_efficient=True)}
    fs = [mlp(width, 2 * width) for _ in range(depth)]
    return {"plain": ODENet(fs, "momentum", gamma=gamma),
            "memory_efficient": ODENet(fs, "momentum", gamma=gamma, memory_efficient=True),
            "momentumnet saving": MomentumNet(fs, gamma=gamma, use_backprop=False)}


class RecomputeFloor(nn.Module):
    """The same steps written out by hand, trained by storing each step's input and
    recomputing the step in the backward pass: the least a recomputation costs."""

    def __init__(self, solver: str, functions: list[tuple[nn.Module, ...]], gamma: float):
        super().__init__()
        self.solver, self.gamma = solver, gamma
        self.fs = nn.ModuleList(nn.ModuleList(f) for f in functions)  # each step's function(s)

    def step(self, i: int, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if self.solver == "revnet":  # X' = X + F(Y), Y' = Y + G(X')
            F, G = self.fs[i]
            x = state[0] + F(state[1])
            return x, state[1] + G(x)
        x, v = state  # v' = gamma v + (1 - gamma) f(x), x' = x + v'
        v = self.gamma * v + (1 - self.gamma) * self.fs[i][0](x)
        return x + v, v

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        state = tuple(u.chunk(2, dim=1)) if self.solver == "revnet" else (u, torch.zeros_like(u))
        out = _Stored.apply(self, len(state), *state, *self.parameters())
        return torch.cat(out, dim=1) if self.solver == "revnet" else out[0]


class _Stored(torch.autograd.Function):
    @staticmethod
    def forward(ctx, net, n, *inputs):
        state, ctx.net, ctx.inputs = inputs[:n], net, []
        for i in range(len(net.fs)):
            ctx.inputs.append(state)
            state = net.step(i, state)
        return state

    @staticmethod
    def backward(ctx, *grads):
        net, params = ctx.net, list(ctx.net.parameters())
        index = {id(p): j for j, p in enumerate(params)}
        totals: list = [None] * len(params)
        for i in reversed(range(len(net.fs))):
            state = [s.detach().requires_grad_(True) for s in ctx.inputs[i]]
            ps = list(net.fs[i].parameters())
            with torch.enable_grad():
                g = torch.autograd.grad(net.step(i, tuple(state)), (*state, *ps), grads)
            grads = g[:len(state)]
            for p, gp in zip(ps, g[len(state):]):
                j = index[id(p)]
                totals[j] = gp if totals[j] is None else totals[j] + gp
        return (None, None, *grads, *totals)


def gradients(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    net.zero_grad(set_to_none=True)
    u = x.clone().requires_grad_(True)
    net(u).square().sum().backward()
    return [u.grad] + [p.grad for p in net.parameters()]


def check_floor(plain: nn.Module, floor: RecomputeFloor, x: torch.Tensor) -> None:
    """The hand-written steps must be the network's own: the same gradients as plain backprop."""
    for a, b in zip(gradients(plain, x), gradients(floor, x), strict=True):
        if not torch.allclose(a, b, rtol=1e-4, atol=1e-6 * float(b.abs().max())):
            raise AssertionError("the recompute floor's gradients are not plain backprop's")


def saved_bytes(net: nn.Module, x: torch.Tensor) -> int:
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(x.clone().requires_grad_(True))
    out.square().sum().backward()
    return total


def train_step(net: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        net.zero_grad(set_to_none=True)
        u = x.clone().requires_grad_(True)
        net(u).square().sum().backward()
    return run


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", default="10,100,1000")
    p.add_argument("--gammas", default="0.2,0.5,0.9,0.99")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--time-depth", type=int, default=100)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    depths = [int(d) for d in args.depths.split(",")]
    gammas = [float(g) for g in args.gammas.split(",")]
    torch.manual_seed(0)  # the same input each run: the chunk that fills first depends on it
    x = torch.randn(args.batch, args.width)
    numbers = x.numel()
    print(f"saved tensors (KB), batch {args.batch}, state {args.width} wide, float32 ({numbers * 4 / 1e3:.1f} KB a state)")
    print(f"{'net':>16} {'contender':>20} " + " ".join(f"{'depth ' + str(d):>11}" for d in depths)
          + f" {'bits/number/step':>17} {'log2(1/gamma)':>14}")
    for solver, gamma in [("revnet", 0.0)] + [("momentum", g) for g in gammas]:
        label = solver if solver == "revnet" else f"momentum {gamma:g}"
        sizes: dict[str, list[int]] = {}
        for depth in depths:
            for name, net in contenders(solver, depth, gamma, args.width).items():
                sizes.setdefault(name, []).append(saved_bytes(net, x))
        for name, ks in sizes.items():
            growth = (ks[-1] - ks[0]) * 8 / numbers / (depths[-1] - depths[0])
            theory = "" if solver == "revnet" or name != "memory_efficient" else f"{math.log2(1 / gamma):14.3f}"
            print(f"{label:>16} {name:>20} " + " ".join(f"{k / 1e3:11.1f}" for k in ks) + f" {growth:17.3f} {theory}")

    print(f"\ntraining step at depth {args.time_depth}, CPU time, {args.threads} thread(s), median of "
          f"{args.repeats} interleaved repeats")
    print(f"{'net':>16} {'contender':>20} {'ms':>8} {'/ plain':>8} {'/ momentumnet saving':>21}")
    for solver, gamma in [("revnet", 0.0), ("momentum", 0.9)]:
        label = solver if solver == "revnet" else f"momentum {gamma:g}"
        nets = contenders(solver, args.time_depth, gamma, args.width)
        nets["recompute floor"] = RecomputeFloor(solver, [s.functions for s in nets["plain"].layers], gamma)
        check_floor(nets["plain"], nets["recompute floor"], x)
        runs = {name: train_step(net, x) for name, net in nets.items()}
        for run in runs.values():
            run()
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            order = list(runs)
            random.shuffle(order)
            for name in order:
                start = time.process_time()
                runs[name]()
                times[name].append(time.process_time() - start)
        for name, ts in times.items():
            ratio = statistics.median(t / p for t, p in zip(ts, times["plain"]))
            versus = ""
            if name == "memory_efficient" and "momentumnet saving" in times:
                versus = f"{statistics.median(t / m for t, m in zip(ts, times['momentumnet saving'])):21.2f}"
            print(f"{label:>16} {name:>20} {statistics.median(ts) * 1e3:8.2f} {ratio:8.2f} {versus}")


if __name__ == "__main__":
    main()
