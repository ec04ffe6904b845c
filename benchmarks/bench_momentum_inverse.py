"""How far back the momentum step can be inverted: the round-trip error of x_0.

Runs N momentum steps x_{n+1} = (1 + gamma) x_n - gamma x_{n-1} + dt (1 - gamma) f_n(x_n)
forward (one random MLP per step, as in a ResNet), then N inverse steps
(:meth:`solvers.Momentum.inverse`) back, and prints ||x_0' - x_0|| / ||x_0|| in float32
and float64 for each depth and gamma. Rounding errors grow by about 1 / gamma per inverted
step, so the float32 error reaches 1e-4 at some depth: the script prints, per gamma, the
largest depth run up to which every error stays below it.

    python benchmarks/bench_momentum_inverse.py
    python benchmarks/bench_momentum_inverse.py --depths 20,100,1000 --gammas 0.9 --seeds 3
"""
from __future__ import annotations

import argparse

import torch
from torch import nn

import solvers
from solvers import Momentum


def round_trip(depth: int, gamma: float, dtype: torch.dtype, width: int, batch: int, seed: int) -> float:
    """Relative error of x_0 after ``depth`` steps forward and as many inverse steps back."""
    torch.manual_seed(seed)
    fs = [nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width)).to(dtype)
          for _ in range(depth)]
    scheme = Momentum(gamma=gamma)
    x0 = torch.randn(batch, width, dtype=dtype)
    with torch.no_grad():
        x, past = x0, ()
        for n, f in enumerate(fs):
            x, record = scheme.step(solvers.timed(f), float(n), 1.0, x, past)
            past = (record,)
        for n in reversed(range(depth)):
            x, past = scheme.inverse(solvers.timed(fs[n]), float(n), 1.0, x, past)
    return float((x - x0).norm() / x0.norm())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", default="10,20,30,40,50,70,100,200,1000")
    parser.add_argument("--gammas", default="0.5,0.9,0.99")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3, help="the error is the largest over this many seeds")
    parser.add_argument("--threshold", type=float, default=1e-4)
    args = parser.parse_args(argv)
    depths = [int(d) for d in args.depths.split(",")]
    gammas = [float(g) for g in args.gammas.split(",")]
    print(f"relative round-trip error of x_0, max over {args.seeds} seed(s); MLP {args.width}-tanh-{args.width} "
          f"per step, batch {args.batch}, dt = 1")
    print(f"{'gamma':>6} {'depth':>6} {'float32':>10} {'float64':>10}")
    for gamma in gammas:
        below = previous = None
        for depth in depths:
            errors = {dtype: max(round_trip(depth, gamma, dtype, args.width, args.batch, seed)
                                 for seed in range(args.seeds)) for dtype in (torch.float32, torch.float64)}
            if errors[torch.float32] < args.threshold and below == previous:
                below = depth
            previous = depth
            print(f"{gamma:6g} {depth:6d} {errors[torch.float32]:10.2e} {errors[torch.float64]:10.2e}")
        print(f"gamma {gamma:g}: float32 error below {args.threshold:g} at every depth run up to {below}")


if __name__ == "__main__":
    main()
