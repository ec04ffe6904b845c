"""How far back the momentum step can be inverted, and what that does to gradients.

Runs N momentum steps x_{n+1} = (1 + gamma) x_n - gamma x_{n-1} + dt (1 - gamma) f_n(x_n)
forward (one random MLP per step, as in a ResNet, dt = 1) and prints, for each depth N
and gamma, the largest over ``--seeds`` seeds of

- ``x0 f32``, ``x0 f64``: ||x_0' - x_0|| / ||x_0|| after N inverse steps
  (:meth:`solvers.Momentum.inverse`) from x_N, in float32 and float64;
- ``grad f32``: the relative error of the input gradient of sum(x_N^2) computed by
  backpropagating through the inverted steps (each state rebuilt from the next, the way a
  memory-free backward pass does it, written out below) against plain backpropagation,
  float32;
- ``momentumnet``: the same error for momentumnet's ``MomentumNet(use_backprop=False)``
  against its ``use_backprop=True``, float32, when momentumnet is installed (seed 0 only).

Rounding errors grow by about 1 / gamma per inverted step; the last line per gamma gives
the largest depth up to which every float32 error stays below ``--threshold``.

    python benchmarks/bench_momentum_inverse.py
    python benchmarks/bench_momentum_inverse.py --depths 20,100,1000 --gammas 0.9
"""
from __future__ import annotations

import argparse
from typing import Optional

import torch
from odenets.solvers import Momentum, Record
from torch import Tensor, nn

from odenets import solvers


def blocks(depth: int, width: int, dtype: torch.dtype, seed: int) -> list[nn.Module]:
    torch.manual_seed(seed)
    return [nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width)).to(dtype)
            for _ in range(depth)]


def forward(scheme: Momentum, fs: list[nn.Module], x: Tensor) -> tuple[Tensor, tuple]:
    past: tuple = ()
    for n, f in enumerate(fs):
        x, record = scheme.step(solvers.timed(f), float(n), 1.0, x, past)
        past = (record,)
    return x, past


def round_trip(scheme: Momentum, fs: list[nn.Module], x0: Tensor) -> float:
    """Relative error of x_0 rebuilt from x_N by the inverse steps."""
    with torch.no_grad():
        x, past = forward(scheme, fs, x0)
        for n in reversed(range(len(fs))):
            x, past = scheme.inverse(solvers.timed(fs[n]), float(n), 1.0, x, past)
    return float((x - x0).norm() / x0.norm())


def inverted_gradient(scheme: Momentum, fs: list[nn.Module], x0: Tensor) -> Tensor:
    """d sum(x_N^2) / d x_0, keeping only x_N and x_{N-1}: each step is inverted, re-run
    with autograd and backpropagated alone. x_{n+1} = S(x_n, x_{n-1}), so the adjoint of
    x_n gathers what step n hands back for its current state and step n + 1 for its past."""
    with torch.no_grad():
        x, past = forward(scheme, fs, x0)
    adjoint, partial = 2 * x, torch.zeros_like(x)  # adjoint of x_{n+1}; partial adjoint of x_n
    for n in reversed(range(len(fs))):
        f = solvers.timed(fs[n])
        with torch.no_grad():
            x, before = scheme.inverse(f, float(n), 1.0, x, past)  # x_n and (x_{n-1},)
        u = x.detach().requires_grad_(True)
        previous: Optional[Tensor] = before[0].u.detach().requires_grad_(True) if n else None
        with torch.enable_grad():
            out, _ = scheme.step(f, float(n), 1.0, u, (Record(previous),) if n else ())
            grads = torch.autograd.grad(out, [u] + ([previous] if n else []), adjoint)
        adjoint = partial + grads[0]
        partial = grads[1] if n else None
        past = before
    return adjoint


def plain_gradient(scheme: Momentum, fs: list[nn.Module], x0: Tensor) -> Tensor:
    x = x0.clone().requires_grad_(True)
    return torch.autograd.grad(forward(scheme, fs, x)[0].square().sum(), x)[0]


def relative(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def momentumnet_gradient_error(fs: list[nn.Module], x0: Tensor, gamma: float) -> Optional[float]:
    try:
        from momentumnet import MomentumNet
    except ImportError:
        return None
    grads = []
    for use_backprop in (True, False):
        x = x0.clone().requires_grad_(True)
        out = MomentumNet(fs, gamma=gamma, use_backprop=use_backprop)(x)
        grads.append(torch.autograd.grad(out.square().sum(), x)[0])
    return relative(grads[1], grads[0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", default="10,20,30,40,50,70,100,200,300,1000")
    parser.add_argument("--gammas", default="0.5,0.9,0.99")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3, help="errors are the largest over this many seeds")
    parser.add_argument("--threshold", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    depths = [int(d) for d in args.depths.split(",")]
    gammas = [float(g) for g in args.gammas.split(",")]
    print(f"relative errors, largest over {args.seeds} seed(s); MLP {args.width}-tanh-{args.width} per step, "
          f"batch {args.batch}, dt = 1")
    print(f"{'gamma':>6} {'depth':>6} {'x0 f32':>9} {'x0 f64':>9} {'grad f32':>9} {'momentumnet':>11}")
    for gamma in gammas:
        scheme = Momentum(gamma=gamma)
        below = previous = None
        for depth in depths:
            x0_32, x0_64, grad_32 = [], [], []
            for seed in range(args.seeds):
                fs = blocks(depth, args.width, torch.float32, seed)
                x0 = torch.randn(args.batch, args.width)
                x0_32.append(round_trip(scheme, fs, x0))
                grad_32.append(relative(inverted_gradient(scheme, fs, x0), plain_gradient(scheme, fs, x0)))
                x0_64.append(round_trip(scheme, [f.double() for f in fs], x0.double()))
            theirs = momentumnet_gradient_error(blocks(depth, args.width, torch.float32, 0),
                                                torch.randn(args.batch, args.width), gamma)
            worst = max(max(x0_32), max(grad_32))
            if worst < args.threshold and below == previous:
                below = depth
            previous = depth
            print(f"{gamma:6g} {depth:6d} {max(x0_32):9.2e} {max(x0_64):9.2e} {max(grad_32):9.2e} "
                  f"{'-' if theirs is None else f'{theirs:.2e}':>11}")
        print(f"gamma {gamma:g}: float32 errors below {args.threshold:g} at every depth run up to {below}")


if __name__ == "__main__":
    main()
