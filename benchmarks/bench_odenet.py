"""Forward+backward time of ODENet against a hand-written loop over the same modules,
torchdiffeq's ``odeint`` and torchdyn's ``NeuralODE`` on the same f with the same fixed step.

Every contender of one f runs in the same process on the same input; the contenders are
interleaved (a fresh random order in every repeat) after a warm-up, and each row reports the
median time of one forward+backward, that time per f-evaluation, and the median over repeats
of its time divided by the hand-written loop's time in the same repeat (a paired ratio, so
slow drifts of a shared machine cancel). The issue's target: ODENet within 1.05x of the loop.
On the CPU the clock is by default the process's CPU time, which other processes sharing the
machine disturb much less than the wall clock (best with one thread); ``--clock wall`` for the
wall clock, which a GPU needs.

    python benchmarks/bench_odenet.py --threads 1
    python benchmarks/bench_odenet.py --threads 1 --compile   # torch.compile(fullgraph=True) of each side

``--compile`` compiles ODENet and the hand-written loop alike and adds RK4 (target: the
compiled ODENet within 1.05x of the compiled loop); torchdiffeq and torchdyn are left out.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from odenets import ODENet

TARGET = 1.05


@dataclass
class Contender:
    """One way of computing u_N: ``run(u0) -> u_N``, with the parameters it trains."""

    name: str
    run: Callable[[Tensor], Tensor]
    params: list[nn.Parameter]
    times: list[float] = field(default_factory=list)


@dataclass
class Group:
    """Contenders that compute the same u_N; ``contenders[0]`` is the hand-written reference."""

    label: str
    evals: int
    contenders: list[Contender]


# -- the vector fields ---------------------------------------------------------------------

def mlp(width: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width))


def conv(channels: int = 16) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
                         nn.Conv2d(channels, channels, 3, padding=1))


MODELS = {  # name: (factory, input shape)
    "mlp": (mlp, (256, 64)),
    "conv": (conv, (32, 16, 16, 16)),
}


def small_init(m: nn.Module) -> nn.Module:
    """Scale the last layer down so that 20 unit steps keep the state bounded."""
    with torch.no_grad():
        for p in list(m.parameters())[-2:]:
            p.mul_(0.1)
    return m


# -- the hand-written reference -----------------------------------------------------------

class Loop(nn.Module):
    """The hand-written reference: an nn.Module over the same modules (and k_n), as a
    user would write one, so that eager and compiled calls cost the same around it.

    euler: u_{n+1} = u_n + f_n(u_n); rk4: the classical four stages;
    lm: u_1 = u_0 + f_0(u_0), u_{n+1} = (1 - k_n) u_n + k_n u_{n-1} + f_n(u_n), ks[n-1] = k_n."""

    def __init__(self, scheme: str, fs: list[nn.Module], ks: Optional[list[nn.Parameter]] = None):
        super().__init__()
        self.scheme, self.fs, self.ks = scheme, nn.ModuleList(fs), nn.ParameterList(ks or [])

    def forward(self, u: Tensor) -> Tensor:
        if self.scheme == "lm":
            prev, u = u, u + self.fs[0](u)
            for f, k in zip(list(self.fs)[1:], self.ks):
                prev, u = u, (1 - k) * u + k * prev + f(u)
            return u
        for f in self.fs:
            if self.scheme == "euler":
                u = u + f(u)
            else:
                k1 = f(u)
                k2 = f(u + 0.5 * k1)
                k3 = f(u + 0.5 * k2)
                k4 = f(u + k3)
                u = u + (k1 + 2 * k2 + 2 * k3 + k4) / 6
        return u


# -- the contenders ---------------------------------------------------------------------------

def groups(model: str, steps: int, device: torch.device, compiled: bool = False) -> list[Group]:
    make, _ = MODELS[model]
    shared = small_init(make()).to(device)
    per_step = [small_init(make()).to(device) for _ in range(steps)]
    out = []
    for kind, fs, f in (("shared", [shared] * steps, shared), ("per-step", per_step, per_step)):
        params = list(nn.ModuleList(fs).parameters())
        net = ODENet(f, solver="euler", steps=steps).to(device)
        euler = [Contender("loop", Loop("euler", fs), params), Contender("ODENet", net, params)]
        if kind == "shared" and not compiled:
            euler += external(shared, steps, params, device)
        out.append(Group(f"{model} {kind} euler", steps, euler))
        if compiled:
            rk4 = ODENet(f, solver="rk4", steps=steps).to(device)
            out.append(Group(f"{model} {kind} rk4", 4 * steps, [Contender("loop", Loop("rk4", fs), params),
                                                                 Contender("ODENet", rk4, params)]))

        lm = ODENet(f, solver="lm", steps=steps).to(device)
        ks = [nn.Parameter(lm.layers[n].coefs["k"].detach().clone()) for n in range(1, steps)]
        out.append(Group(f"{model} {kind} lm", steps, [Contender("loop", Loop("lm", fs, ks), params + ks),
                                                        Contender("ODENet", lm, list(lm.parameters()))]))
    return out


def external(f: nn.Module, steps: int, params: list, device: torch.device) -> list[Contender]:
    """torchdiffeq and torchdyn with forward Euler, dt = 1, on the shared f."""
    out = []
    T = float(steps)
    try:
        import torchdiffeq
    except ImportError:
        print("torchdiffeq not installed: skipped")
    else:
        t = torch.tensor([0.0, T], device=device)
        field_ = lambda t, u: f(u)  # noqa: E731
        out.append(Contender("torchdiffeq", lambda u0: torchdiffeq.odeint(
            field_, u0, t, method="euler", options={"step_size": 1.0})[-1], params))
    try:
        from torchdyn.core import NeuralODE
    except ImportError:
        print("torchdyn not installed: skipped")
    else:
        with contextlib.redirect_stdout(io.StringIO()):  # its note that it wrapped f(x) as f(t, x)
            node = NeuralODE(f, solver="euler", sensitivity="autograd", return_t_eval=False).to(device)
        grid = torch.linspace(0.0, T, steps + 1, device=device)
        out.append(Contender("torchdyn", lambda u0: node(u0, grid)[-1], params))
    return out


# -- timing -----------------------------------------------------------------------------------

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def forward_backward(c: Contender, u0: Tensor, sync: Callable[[], None], clock: Callable[[], float]) -> float:
    for p in c.params:
        p.grad = None
    sync()
    start = clock()
    c.run(u0).sum().backward()
    sync()
    return clock() - start


def check(group: Group, u0: Tensor) -> None:
    """Every contender computes the reference's u_N (else the timings compare different work)."""
    want = group.contenders[0].run(u0)
    for c in group.contenders[1:]:
        got = c.run(u0)
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
            raise AssertionError(f"{group.label}: {c.name} differs from the loop by "
                                 f"{(got - want).abs().max().item():.3g}")


def bench(model: str, args: argparse.Namespace, device: torch.device) -> list[Group]:
    torch.manual_seed(args.seed)
    gs = groups(model, args.steps, device, args.compile)
    if args.compile:
        for c in (c for g in gs for c in g.contenders):
            c.run = torch.compile(c.run, fullgraph=True)
    shape = MODELS[model][1]
    u0 = torch.randn((args.batch or shape[0],) + shape[1:], device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    clock = CLOCKS[args.clock]
    for g in gs:
        check(g, u0)
    everyone = [c for g in gs for c in g.contenders]
    for _ in range(args.warmup):
        for c in everyone:
            forward_backward(c, u0, sync, clock)
    order = random.Random(args.seed)
    for _ in range(args.repeats):
        order.shuffle(everyone)
        for c in everyone:
            c.times.append(forward_backward(c, u0, sync, clock))
    return gs


def report(gs: list[Group]) -> list[float]:
    """Print the table; return ODENet's ratios."""
    print(f"{'f / modules / scheme':<24}{'contender':<13}{'median ms':>10}{'IQR %':>7}{'ms / f-eval':>12}"
          f"{'x loop':>8}")
    ratios = []
    for g in gs:
        ref = g.contenders[0].times
        for c in g.contenders:
            med = statistics.median(c.times)
            q1, _, q3 = statistics.quantiles(c.times, n=4)
            ratio = statistics.median(t / r for t, r in zip(c.times, ref))
            if c.name == "ODENet":
                ratios.append(ratio)
            flag = "  (over target)" if c.name == "ODENet" and ratio > TARGET else ""
            print(f"{g.label:<24}{c.name:<13}{1e3 * med:>10.3f}{100 * (q3 - q1) / med:>7.1f}"
                  f"{1e3 * med / g.evals:>12.4f}{ratio:>8.3f}{flag}")
        print()
    return ratios


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20, help="Euler steps N (default 20)")
    p.add_argument("--repeats", type=int, default=100, help="timed repeats per contender (default 100)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs per contender first (default 5)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--clock", choices=sorted(CLOCKS), default=None,
                   help="cpu: process CPU time (default on the CPU), wall: wall clock (default, and needed, on a GPU)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mlp", "conv"])
    p.add_argument("--batch", type=int, default=None, help="batch size (default: mlp 256, conv 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="torch.compile(fullgraph=True) both sides; adds rk4")
    args = p.parse_args(argv)
    if args.steps < 1 or args.repeats < 2 or (args.batch is not None and args.batch < 1):
        p.error("--steps and --batch must be at least 1, --repeats at least 2")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.clock is None:
        args.clock = "cpu" if device.type == "cpu" else "wall"
    if args.clock == "cpu" and device.type != "cpu":
        p.error(f"--clock cpu measures the CPU only; time {device.type} with --clock wall")
    batch = args.batch or "mlp 256, conv 32"
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"steps {args.steps}, repeats {args.repeats}, batch {batch}, {args.clock} clock"
          + (", torch.compile(fullgraph=True)" if args.compile else ""))
    print("forward+backward of u_N.sum(); 'x loop' = median over repeats of time / hand-written loop's time\n")
    ratios = []
    for model in args.models:
        ratios += report(bench(model, args, device))
    worst = max(ratios)
    print(f"ODENet worst ratio {worst:.3f}: {'within' if worst <= TARGET else 'over'} the {TARGET}x target")


if __name__ == "__main__":
    main()
