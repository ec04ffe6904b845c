"""The float32 accuracy of every scheme in solvers.available().

For each scheme, depth N and step dt: N random MLP blocks (32-64-32, one per step; a pair
of 16-32-16 blocks for a two-function scheme, revnet's on the halves of the state; one
shared block for the adaptive methods, which integrate over [0, N dt] at their default
tolerances), batch ``--batch``, run in float64 and in float32 with the same weights, in
eval mode (euler_maruyama's deterministic drift). It prints the relative error
||a32 - a64|| / ||a64|| of the output u_N and of the gradient of sum(u_N^2) with respect to
the input and every parameter (one vector), each divided by forward Euler's at the same
depth and dt, and the networks' sensitivity: how much the float64 output and gradient
move when only the input is perturbed by float32's rounding (relative 2^-24 per entry), a
lower bound on any float32 computation's error. A scheme more than 3x worse than Euler
is marked ``!``. For an adaptive method it also prints how many times the float64 and the
float32 run evaluated f (``--rtol``, ``--atol``: its tolerances, ODENet's defaults unless
given).

    python benchmarks/bench_float32.py
    python benchmarks/bench_float32.py --depths 10,100 --schemes euler,rk4,momentum
    python benchmarks/bench_float32.py --schemes dopri5 --depths 100 --dts 1 --rtol 1e-5 --atol 1e-7
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from odenets import ODENet, solvers

OPTIONS = {"euler_maruyama": {"diffusion": 0.1}}


def mlp(d: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, d))


class Counted(nn.Module):
    """A function that counts its evaluations."""

    def __init__(self, f: nn.Module):
        super().__init__()
        self.f, self.calls = f, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.f(x)


def build(name: str, depth: int, dt: float, tolerances: dict) -> ODENet:
    torch.manual_seed(0)
    if solvers.is_adaptive(name):
        return ODENet(Counted(mlp(32, 64)), name, steps=depth, dt=dt, **tolerances)
    pair = solvers.get(name, **OPTIONS.get(name, {})).functions == 2
    half = 16 if solvers.get(name, **OPTIONS.get(name, {})).splits_state else 32
    fs = [(mlp(half, 2 * half), mlp(half, 2 * half)) if pair else mlp(32, 64) for _ in range(depth)]
    return ODENet(fs, name, dt=dt, **OPTIONS.get(name, {}))


def errors(name: str, depth: int, dt: float, x: torch.Tensor,
           tolerances: dict) -> tuple[tuple[float, float, float, float], list[int]]:
    """Relative float32 errors of the output and the gradient, and the same networks'
    sensitivity: the relative change of both, in float64, when the input alone is perturbed
    by float32's rounding (a relative 2^-24 per entry); and, for an adaptive method, how
    many times the float64 and the float32 run evaluated f."""
    nudged = x.double() * (1 + 2.0 ** -24 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2),
                                                        dtype=torch.float64))
    results, calls = [], []
    for dtype, u0 in ((torch.float64, x.double()), (torch.float32, x), (torch.float64, nudged)):
        net = build(name, depth, dt, tolerances).to(dtype).eval()
        u = u0.to(dtype).requires_grad_(True)
        out = net(u)
        grads = torch.autograd.grad(out.square().sum(), [u, *net.parameters()])
        results.append((out.detach().double(), torch.cat([g.double().flatten() for g in grads])))
        calls += [m.calls for m in net.modules() if isinstance(m, Counted)]
    (o64, g64), (o32, g32), (on, gn) = results

    def rel(a, b):
        return float((a - b).norm() / b.norm())
    return (rel(o32, o64), rel(g32, g64), rel(on, o64), rel(gn, g64)), calls[:2]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", default="10,100,1000")
    p.add_argument("--dts", default="1,0.1")
    p.add_argument("--schemes", default=",".join(solvers.available()))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rtol", type=float, default=1e-7)
    p.add_argument("--atol", type=float, default=1e-9)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    x = torch.randn(args.batch, 32)
    names = args.schemes.split(",")
    tolerances = dict(rtol=args.rtol, atol=args.atol)
    print("relative float32 error against float64 (output u_N; gradient of sum(u_N^2), input and weights), "
          "and each over forward Euler's")
    print(f"{'scheme':>15} {'dt':>4} {'depth':>6} {'output':>9} {'gradient':>9} {'out/euler':>10} {'grad/euler':>11}"
          f" {'out sens':>9} {'grad sens':>9} {'s':>6}")
    for dt in (float(d) for d in args.dts.split(",")):
        for depth in (int(d) for d in args.depths.split(",")):
            euler, _ = errors("euler", depth, dt, x, tolerances)
            for name in names:
                start = time.process_time()
                try:
                    (out, grad, out_sens, grad_sens), calls = errors(name, depth, dt, x, tolerances)
                except Exception as e:  # a diverging float64 reference, a torchdiffeq underflow: say so
                    print(f"{name:>15} {dt:4g} {depth:6d} failed: {type(e).__name__}: {str(e)[:80]}", flush=True)
                    continue
                ro, rg = out / euler[0], grad / euler[1]
                mark = " !" if max(ro, rg) > 3 else ""
                if calls:
                    mark += f" (f evaluated {calls[0]} / {calls[1]} times in float64 / float32)"
                print(f"{name:>15} {dt:4g} {depth:6d} {out:9.2e} {grad:9.2e} {ro:10.2f} {rg:11.2f}"
                      f" {out_sens:9.2e} {grad_sens:9.2e} {time.process_time() - start:6.1f}{mark}", flush=True)


if __name__ == "__main__":
    main()
