"""ODENet: any residual function, unrolled by a fixed-step scheme into a trainable network."""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as _checkpoint

import solvers
from solvers import Past, Record, Scheme

from .reversible import reversible_steps

NOISES = ("stochastic_depth", "shake_shake")


class Carry(NamedTuple):
    """What one ODENet hands the next when several are chained (the stages of a
    network): the state and the records of the last steps, which a multistep scheme
    reads across the boundary."""

    u: Tensor
    past: Past = ()


class ODENet(nn.Module):
    """Unroll ``steps`` steps of a scheme for u' = f(t, u) into a network.

    ``f`` is one of:

    - an ``nn.Module`` (an ``nn.Sequential`` too) used at every step: a neural ODE,
      weights tied; give ``steps``;
    - a list, tuple or ``nn.ModuleList`` of modules, one per step: f_n is the n-th
      residual block (ResNet);
    - a factory ``i -> nn.Module``, called for each of ``steps`` steps.

    Schemes with two functions per step (``revnet``: (F, G); ``fractal``: (f1, f2)) and
    ``noise='shake_shake'`` (two branches) take a pair where the others take a module.
    A module whose forward takes two arguments is called as f(t_n, u) with
    t_n = t0 + n dt (stage times for multi-stage schemes), otherwise as f(u). A module
    with a ``shortcut`` attribute changes the state's shape (a downsampling block): its
    step is the ResNet transition u_{n+1} = P(u_n) + dt f_n(u_n) with P = shortcut,
    under every scheme (as in LM-ResNet's authors' code), and has no trainable
    coefficients; a multistep scheme reads P(u_n), and P of any older state it still
    needs, as its history after it. The modules are fixed at construction: build a new
    ODENet rather than replacing entries of ``fns``.

    Args:
        solver: a name from :func:`solvers.available`.
        steps: number of steps; implied by a sequence of modules.
        dt: the step; 1.0 is the residual-network convention u + f(u), a neural-ODE
            user passes T / steps.
        noise: ``'stochastic_depth'`` (step n's residual term kept with probability
            p_n, decaying linearly to ``survival`` at the last step; a sequence gives
            p_n directly) or ``'shake_shake'``. Eval mode takes the expectation.
        activation: applied to the result of every step, u_{n+1} = activation(step):
            the ReLU after the addition in the original (post-activation) ResNet. It
            may work in place (``nn.ReLU(inplace=True)``, as the zoo's): a step's result
            is a new tensor.
        return_trajectory: return every state u_0..u_N (stacked when shapes agree,
            else a list) instead of u_N.
        checkpoint: recompute each step in the backward pass (less memory, more time).
        memory_efficient: ``revnet`` only: recompute states from the output in the
            backward pass, so activation memory does not grow with depth.
        carry_in: this net continues the history of an earlier one (a later stage of a
            network, see :meth:`integrate`). Without it the first steps, whose history is
            too short for a multistep scheme, get no trainable coefficients, since they
            could never be used.
        t0: the time of u_0; step n is at t_n = t0 + n dt.
        rtol, atol, adjoint: for the adaptive solvers, delegated to torchdiffeq over
            [t0, t0 + steps * dt].
        **options: the scheme's own options, e.g. ``k_init``/``channels`` for ``lm``,
            ``truncation`` for ``polynet``, ``diffusion`` for ``euler_maruyama``.
    """

    def __init__(self, f: Union[nn.Module, Sequence, Callable[[int], nn.Module]], solver: str = "euler",
                 steps: Optional[int] = None, dt: float = 1.0, *, noise: Optional[str] = None,
                 survival: Union[float, Sequence[float]] = 0.5, activation: Optional[nn.Module] = None,
                 return_trajectory: bool = False,
                 checkpoint: bool = False, memory_efficient: bool = False, rtol: float = 1e-7,
                 atol: float = 1e-9, adjoint: bool = False, t0: float = 0.0, carry_in: bool = False, **options):
        super().__init__()
        if not isinstance(solver, str):
            raise TypeError(f"solver must be a name (str), one of: {', '.join(solvers.available())}")
        self.adaptive = solvers.is_adaptive(solver)
        if self.adaptive:
            if options:
                raise ValueError(f"adaptive solver {solver!r} takes rtol, atol and adjoint, not {', '.join(options)}")
            self.scheme: Optional[Scheme] = None
        else:
            self.scheme = solvers.get(solver, **options)
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        if not isinstance(dt, (int, float)) or isinstance(dt, bool) or not dt > 0:
            raise ValueError(f"dt must be a positive number, got {dt!r}")
        if noise is not None and noise not in NOISES:
            raise ValueError(f"unknown noise {noise!r}; choose one of: {', '.join(NOISES)} (or None)")
        arity = 1 if self.adaptive else self.scheme.functions
        if noise == "shake_shake":
            if arity != 1:
                raise ValueError(f"noise='shake_shake' needs a one-function scheme; {solver!r} already takes a pair")
            arity = 2
        fns, self.shared, steps = _functions(f, steps, arity, solver)
        if self.adaptive and not self.shared:
            raise ValueError(f"adaptive solver {solver!r} integrates a single shared f; got {steps} per-step "
                             "modules (use a fixed-step solver for a residual network)")
        if self.adaptive and noise:
            raise ValueError(f"adaptive solver {solver!r} is deterministic; noise={noise!r} needs a fixed-step solver")
        if self.adaptive and (activation is not None or checkpoint or memory_efficient):
            raise ValueError(f"adaptive solver {solver!r} hands the whole integration to torchdiffeq; it takes "
                             "no activation, checkpoint or memory_efficient (adjoint=True saves memory)")
        if memory_efficient and return_trajectory:
            raise ValueError("return_trajectory keeps every state, which memory_efficient=True exists to avoid; "
                             "use one or the other")
        if memory_efficient and solver != "revnet":
            raise ValueError(f"memory_efficient=True is for solver='revnet' (invertible steps), not {solver!r}; "
                             "checkpoint=True saves memory for any scheme")
        if memory_efficient and (noise or checkpoint or activation is not None):
            raise ValueError("memory_efficient=True recomputes states by inverting the steps, which needs "
                             "noise=None, activation=None and checkpoint=False")
        self.solver, self.steps, self.dt, self.t0, self.carry_in = solver, steps, float(dt), float(t0), carry_in
        self.noise, self.return_trajectory = noise, return_trajectory
        self.checkpoint, self.memory_efficient = checkpoint, memory_efficient
        self.rtol, self.atol, self.adjoint = rtol, atol, adjoint
        self.fns = nn.ModuleList(fns)
        self.activation = activation
        self._timed = [[solvers.takes_time(m) for m in _items(fn)] for fn in fns]
        self.survival = solvers.survival_probabilities(steps, survival) if noise == "stochastic_depth" else None
        for key, value in options.items():  # a module among the options (a learned diffusion) is ours to train
            if isinstance(value, nn.Module):
                self.add_module(key, value)
        reshapes = [_shortcut(self.fn(n)) is not None for n in range(steps)]
        if (self.scheme and self.scheme.functions > 1 and type(self.scheme).transition is Scheme.transition
                and any(reshapes)):
            raise ValueError(f"solver {solver!r} takes {self.scheme.functions} functions per step and has no "
                             "shape-changing step: a module with a `shortcut` needs a one-function scheme or 'revnet'")
        params = [self.scheme.init_params(n) if (carry_in or n >= self.scheme.history) and not reshapes[n] else {}
                  for n in range(steps)] if self.scheme else []
        self.coefs = nn.ModuleList(
            [nn.ParameterDict({k: nn.Parameter(v) for k, v in p.items()}) for p in params] if any(params) else [])

    def extra_repr(self) -> str:
        extra = f", noise={self.noise!r}" if self.noise else ""
        return f"solver={self.solver!r}, steps={self.steps}, dt={self.dt}{extra}"

    # -- the public calls ------------------------------------------------------------

    def forward(self, u0: Tensor) -> Union[Tensor, list[Tensor]]:
        """u_N, or the trajectory u_0..u_N with ``return_trajectory``."""
        if self.adaptive:
            return self._adaptive(u0, self.return_trajectory)
        if not self.return_trajectory:
            return self.integrate(Carry(u0)).u
        states = [u0]
        self.integrate(Carry(u0), trajectory=states)
        same = all(s.shape == u0.shape for s in states)
        return torch.stack(states) if same else states

    def integrate(self, carry: Carry, trajectory: Optional[list] = None) -> Carry:
        """Advance ``carry`` through every step; chaining stages passes the history on."""
        u, past = carry
        self._check_state(u)
        if self.adaptive:
            return Carry(self._adaptive(u, trajectory=False))
        if past and len(self.coefs) and not self.carry_in:
            raise ValueError(f"this {self.solver!r} net was handed a history but built without carry_in=True, so its "
                             "first steps have no coefficients to use it: build later stages with carry_in=True")
        scheme = self.scheme if self.training else self.scheme.deterministic
        # read once per call: indexing a ModuleList or ParameterDict costs about a microsecond a time
        fns = list(self.fns) * self.steps if self.shared else list(self.fns)
        coefs = [{k: v for k, v in c.items()} for c in self.coefs]
        n = 0
        while n < self.steps:
            fn = fns[n]
            if self.memory_efficient and _shortcut(fn) is None:
                end = n
                while end < self.steps and _shortcut(fns[end]) is None:
                    end += 1
                u = reversible_steps(self, u, n, end)
                past, n = (), end
            else:
                u, past = self._step(scheme, n, fn, coefs[n] if coefs else {}, u, past)
                n += 1
            if trajectory is not None:
                trajectory.append(u)
        return Carry(u, past)

    @torch.no_grad()
    def inverse(self, u: Tensor) -> Tensor:
        """u_0 from u_N, for ``revnet`` (each step is inverted, last first)."""
        if self.solver != "revnet" or self.activation is not None:
            raise ValueError(f"inverse() needs solver='revnet' without an activation (invertible steps); "
                             f"this net has solver={self.solver!r}, activation={self.activation}")
        for n in reversed(range(self.steps)):
            if _shortcut(self.fn(n)) is not None:
                raise ValueError(f"step {n} changes the state's shape through a shortcut and cannot be inverted")
            u = self.inverse_step(n, u)
        return u

    # -- one step ---------------------------------------------------------------------

    def fn(self, n: int) -> nn.Module:
        """Step n's module (a pair's ModuleList for pair schemes)."""
        return self.fns[0 if self.shared else n]

    def fields(self, n: int, fn: nn.Module, u: Tensor, expected: Optional[torch.Size] = None,
               check: bool = True) -> list:
        """Step n's functions (``fn`` is ``self.fn(n)``) as the scheme calls them,
        f(t, x), with training-mode noise.

        Each output is checked against ``expected`` (a shape-changing step) or else
        against the shape of the function's own input; ``check=False`` leaves the check
        to the scheme (a pair's shape-changing step, whose F maps one shape to another)."""
        timed = self._timed[0 if self.shared else n]
        calls = [_checked(m, t, expected, f"at step {n} ") if check else solvers.timed(m)
                 for m, t in zip(_items(fn), timed)]
        if self.noise == "shake_shake":
            return [solvers.shake_shake(calls, u, self.training)]
        if self.noise == "stochastic_depth" and self.training:
            return solvers.stochastic_depth(calls, self.survival[n], u)
        return calls

    def _step(self, scheme: Scheme, n: int, fn: nn.Module, params: dict[str, Tensor], u: Tensor,
              past: Past) -> tuple[Tensor, Past]:
        t, dt = self.t0 + n * self.dt, self.dt
        shortcut = _shortcut(fn)
        if shortcut is not None:  # the older states later steps still read cross into the new shape
            past = tuple(Record(shortcut(r.u)) for r in past[:max(scheme.history - 1, 0)])

        def run(u: Tensor, past: Past) -> tuple[Tensor, Record]:
            if shortcut is None:
                fs = self.fields(n, fn, u)

                def advance(fs: list) -> tuple[Tensor, Record]:
                    return scheme.step(_one(fs), t, dt, u, past, **params)
            else:
                pu = shortcut(u)
                one = scheme.functions == 1  # then f's output has the new shape; a pair's F changes it, G does not
                fs = self.fields(n, fn, u, pu.shape) if one else self.fields(n, fn, u, check=False)

                def advance(fs: list) -> tuple[Tensor, Record]:
                    return scheme.transition(_one(fs), t, dt, u, pu)
            if self.noise == "stochastic_depth" and not self.training:
                out, record = solvers.expected_step(advance, fs, self.survival[n])
            else:
                out, record = advance(fs)
            if self.activation is None:
                return out, record
            return self.activation(out.clone() if out is u else out), record  # it may work in place

        if self.checkpoint and torch.is_grad_enabled():
            out, record = _checkpoint(lambda u, *flat: run(u, _unflatten(flat)), u, *_flatten(past),
                                      use_reentrant=False)
        else:
            out, record = run(u, past)
        return out, ((record,) + tuple(past))[:scheme.history]

    def step(self, n: int, u: Tensor) -> Tensor:
        """u_{n+1} from u_n by a one-step scheme (no history, no shortcut)."""
        return self.scheme.step(_one(self.fields(n, self.fn(n), u)), self.t0 + n * self.dt, self.dt, u, ())[0]

    def inverse_step(self, n: int, u: Tensor) -> Tensor:
        """u_n from u_{n+1}, for ``revnet``."""
        return self.scheme.inverse(_one(self.fields(n, self.fn(n), u)), self.t0 + n * self.dt, self.dt, u)

    def _check_state(self, u: Tensor) -> None:
        if not isinstance(u, Tensor):
            raise TypeError(f"ODENet takes a tensor state, got {type(u).__name__}")
        if self.solver == "revnet" and (u.dim() < 2 or u.shape[1] % 2):
            raise ValueError(f"solver='revnet' splits the state into two equal halves along dim 1; "
                             f"got shape {tuple(u.shape)} (dim 1 must be even)")

    # -- adaptive solvers ---------------------------------------------------------------

    def _adaptive(self, u0: Tensor, trajectory: bool) -> Tensor:
        import torchdiffeq

        field = _Field(self.fns[0], self._timed[0][0])
        n = self.steps if trajectory else 1
        t = torch.linspace(self.t0, self.t0 + self.steps * self.dt, n + 1, dtype=u0.dtype, device=u0.device)
        odeint = torchdiffeq.odeint_adjoint if self.adjoint else torchdiffeq.odeint
        out = odeint(field, u0, t, method=self.solver, rtol=self.rtol, atol=self.atol)
        return out if trajectory else out[-1]


class _Field(nn.Module):
    """f as the nn.Module torchdiffeq's adjoint expects, called as f(t, u)."""

    def __init__(self, f: nn.Module, timed: bool):
        super().__init__()
        self.f, self.timed = f, timed

    def forward(self, t: Tensor, u: Tensor) -> Tensor:
        return _checked(self.f, self.timed, None, "")(t, u)


def _checked(m: nn.Module, timed: bool, expected: Optional[torch.Size], where: str):
    """m as f(t, x), with its output's shape checked against ``expected`` (else x's)."""
    def call(t: float, x: Tensor) -> Tensor:
        out = m(t, x) if timed else m(x)
        want = x.shape if expected is None else expected
        if out.shape != want:
            raise ValueError(f"f {where}returned shape {tuple(out.shape)} for a state of shape "
                             f"{tuple(x.shape)}; expected {tuple(want)}. A residual function keeps the "
                             "state's shape (a shape-changing block needs a `shortcut` module)")
        return out

    return call


def _shortcut(fn: nn.Module) -> Optional[nn.Module]:
    """The shortcut of a shape-changing step's module (of a pair, the first function's).
    Read from ``_modules``: a missing attribute costs an exception in nn.Module.__getattr__."""
    return _items(fn)[0]._modules.get("shortcut")


def _one(fs: list):
    """What a scheme takes: the field itself, or a tuple for a pair scheme."""
    return fs[0] if len(fs) == 1 else tuple(fs)


def _items(fn: nn.Module) -> list[nn.Module]:
    return list(fn) if isinstance(fn, _Pair) else [fn]


class _Pair(nn.ModuleList):
    """The functions of one step, for schemes that take more than one: (F, G), (f1, f2)."""


def _is_module_group(x, arity: int) -> bool:
    return isinstance(x, (tuple, list, nn.ModuleList)) and len(x) == arity and all(
        isinstance(m, nn.Module) for m in x)


def _functions(f, steps: Optional[int], arity: int, solver: str) -> tuple[list[nn.Module], bool, int]:
    """Normalise ``f`` to (modules, shared, steps)."""
    what = "a module" if arity == 1 else f"a group of {arity} modules (e.g. (F, G))"

    def one(x, where: str) -> nn.Module:
        if arity == 1:
            if not isinstance(x, nn.Module):
                raise TypeError(f"{where} must be an nn.Module, got {type(x).__name__}")
            return x
        if not _is_module_group(x, arity):
            raise ValueError(f"solver {solver!r} takes {what} per step; {where} is {type(x).__name__}")
        return _Pair(x)

    single = isinstance(f, nn.Module) and not isinstance(f, nn.ModuleList)
    if single or (arity > 1 and _is_module_group(f, arity)):
        if steps is None:
            raise ValueError("a single shared f needs steps=n (how many times to apply it)")
        return [one(f, "f")], True, steps
    if isinstance(f, (list, tuple, nn.ModuleList)):
        fs = list(f)
        if not fs:
            raise ValueError("f is an empty sequence; give one module per step")
        if steps is not None and steps != len(fs):
            raise ValueError(f"steps={steps} but f holds {len(fs)} per-step modules; they must agree "
                             "(or leave steps out)")
        return [one(x, f"f[{i}]") for i, x in enumerate(fs)], False, len(fs)
    if callable(f):
        if steps is None:
            raise ValueError("a factory f(i) -> nn.Module needs steps=n")
        return [one(f(i), f"f({i})") for i in range(steps)], False, steps
    raise TypeError(f"f must be an nn.Module, a sequence of modules or a factory i -> nn.Module; got {type(f).__name__}")


def _flatten(past: Past) -> list[Optional[Tensor]]:
    return [x for r in past for x in r]


def _unflatten(flat: Sequence[Optional[Tensor]]) -> tuple[Record, ...]:
    return tuple(Record(flat[i], flat[i + 1]) for i in range(0, len(flat), 2))
