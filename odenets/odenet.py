"""ODENet: any residual function, unrolled by a scheme into a trainable network."""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from odenets.solvers import Past, Scheme, SolverSpec

from .adaptive import Adaptive
from .compat import map_v1_keys
from .reversible import reversible_steps
from .step import Context, Step
from .unroll import FunctionsLike, ShortcutsLike, functions, make_steps, number, shortcut_list


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
    t_n = t0 + n dt (stage times for multi-stage schemes), otherwise as f(u).

    Each step is a :class:`~odenets.step.Step` in ``layers``, owning its shortcut, its
    trained coefficients (``layers[n].coefs``, e.g. LM's k) and its time; ``fns`` holds
    the functions (one module for a shared f).

    Args:
        solver: a name from :func:`solvers.available`, with variants (``'lm+sd'``), or a
            :class:`solvers.SolverSpec`.
        steps: number of steps; implied by a sequence of modules.
        dt: the step; 1.0 is the residual-network convention u + f(u), a neural-ODE
            user passes T / steps.
        noise: ``'stochastic_depth'`` (step n's residual term kept with probability
            p_n, decaying linearly to ``survival`` at the last step; a sequence gives
            p_n directly), ``'batch_drop'`` (the LM-ResNet authors' form) or
            ``'shake_shake'``; see :mod:`odenets.solvers.noise`.
        shortcuts: where the state changes shape (a downsampling block): one entry per
            step (None, or the module P), or a mapping {n: P}. Step n then takes the
            ResNet transition u_{n+1} = P(u_n) + dt f_n(u_n) under every scheme (as in
            LM-ResNet's authors' code) and has no trained coefficients; a multistep
            scheme reads P(u_n), and P of any older state it still needs, after it.
        activation: applied to the result of every step, u_{n+1} = activation(step):
            the ReLU after the addition of the original (post-activation) ResNet; a
            sequence of modules gives each step its own (the LayerNorm after each sub-step
            of a post-norm transformer: u_{n+1} = norm_n(step)). It may
            work in place (``nn.ReLU(inplace=True)``): a step's result is a new tensor.
        return_trajectory: return every state u_0..u_N (stacked when shapes agree,
            else a list) instead of u_N.
        checkpoint: recompute each step in the backward pass (less memory, more time).
        memory_efficient: for an invertible scheme (``revnet``, ``momentum``): rebuild the
            states from the output in the backward pass, so activation memory does not grow
            with depth; bit for bit for a scheme that declares ``exact_reversal`` (revnet,
            momentum: docs/exact-reversal.md), checked for drift otherwise. Dropout (any
            random draw inside f) trains as with plain backprop: the random state of each
            function evaluation that draws is saved (about 5 KB each) and replayed.
        carry_in: this net continues the history of an earlier one (a later stage of a
            network, see :meth:`integrate`). Without it the first steps, whose history is
            too short for a multistep scheme, get no trained coefficients.
        t0: the time of u_0; step n is at t_n = t0 + n dt.
        rtol, atol, adjoint: for the adaptive solvers, delegated to torchdiffeq over
            [t0, t0 + steps * dt].
        **options: the scheme's own options, e.g. ``k_init``/``channels`` for ``lm``,
            ``truncation`` for ``polynet``, ``diffusion`` for ``euler_maruyama``.
    """

    def __init__(self, f: FunctionsLike, solver: Union[str, SolverSpec] = "euler", steps: Optional[int] = None,
                 dt: float = 1.0, *, noise: Optional[str] = None, survival: Union[None, float, Sequence[float]] = None,
                 shortcuts: ShortcutsLike = None,
                 activation: Union[None, nn.Module, Sequence[nn.Module]] = None,
                 return_trajectory: bool = False, checkpoint: bool = False, memory_efficient: bool = False,
                 rtol: float = 1e-7, atol: float = 1e-9, adjoint: bool = False, t0: float = 0.0,
                 carry_in: bool = False, **options):
        super().__init__()
        self.spec = spec = SolverSpec.parse(solver, noise=noise, survival=survival, **options)
        self.dt, self.t0 = number("dt", dt, positive=True), number("t0", t0)
        if isinstance(activation, (list, tuple)):
            activation = nn.ModuleList(activation)
        if activation is not None and not isinstance(activation, nn.Module):
            raise TypeError(f"activation must be an nn.Module, a sequence of them (one per step) or None, got "
                            f"{type(activation).__name__}")
        for name, flag in (("return_trajectory", return_trajectory), ("checkpoint", checkpoint),
                           ("memory_efficient", memory_efficient), ("adjoint", adjoint), ("carry_in", carry_in)):
            if not isinstance(flag, bool):  # 'no' would be true
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        fns, shared, steps = functions(f, steps, spec.functions, spec.label)
        self.fns = nn.ModuleList(fns)
        self.activation = activation
        self.steps, self.carry_in, self.return_trajectory = steps, carry_in, return_trajectory
        self.memory_efficient = memory_efficient
        for key, value in options.items():  # a module among the options (a learned diffusion) is ours to train
            if isinstance(value, nn.Module):
                self.add_module(key, value)
        self._adaptive: Optional[Adaptive] = None
        if spec.adaptive:
            _check_adaptive(spec.name, shared, shortcuts, activation, checkpoint, memory_efficient)
            self._adaptive = Adaptive(fns[0], spec.name, self.t0, self.dt, steps, number("rtol", rtol, positive=True),
                                      number("atol", atol, positive=True), adjoint)
            self.layers = nn.ModuleList()
        else:
            self.layers = nn.ModuleList(make_steps(spec, fns, shared, steps, self.dt, self.t0,
                                                   shortcut_list(shortcuts, steps, shared), activation, checkpoint,
                                                   carry_in))
            if memory_efficient:
                _check_memory_efficient(spec, return_trajectory, checkpoint, activation)
        self._has_coefficients = any(len(s.coefs) for s in self.layers)
        self._checked_keys: set[frozenset[str]] = set()  # context keys every step's functions take
        self.register_load_state_dict_pre_hook(map_v1_keys)

    def extra_repr(self) -> str:
        return f"solver={self.spec.label!r}, steps={self.steps}, dt={self.dt}"

    @property
    def solver(self) -> str:
        """The scheme's name (``spec.label`` names its noise too)."""
        return self.spec.name

    @property
    def noise(self) -> Optional[str]:
        """The noise on the residual terms (``'stochastic_depth'``, ``'batch_drop'``,
        ``'shake_shake'``), or None for a deterministic network."""
        return self.spec.noise

    @property
    def scheme(self) -> Optional[Scheme]:
        """The scheme without noise (None for an adaptive solver); each step's own, noise
        included, is ``layers[n].scheme``."""
        return self.spec.scheme

    @property
    def coefs(self) -> list[nn.ParameterDict]:
        """Each step's trained coefficients, in step order (empty for steps without)."""
        return [s.coefs for s in self.layers]

    @property
    def drops_steps(self) -> bool:
        """Whether a training step may skip its functions (the authors' stochastic depth),
        leaving their parameters without a gradient: DDP needs find_unused_parameters."""
        return any(s.scheme.skips_functions for s in self.layers)

    def coefficients(self):
        """The trained coefficients of every step (LM's k_n): the parameters of the
        scheme, as opposed to those of the functions."""
        for s in self.layers:
            yield from s.coefs.values()

    # -- the public calls ------------------------------------------------------------

    def forward(self, u0: Tensor, **context) -> Union[Tensor, list[Tensor]]:
        """u_N, or the trajectory u_0..u_N with ``return_trajectory``.

        ``context``: keyword arguments handed to every evaluation of every step's function
        (each Runge-Kutta stage, both functions of a pair, the recomputations of
        ``checkpoint`` and ``memory_efficient``): an attention mask, a conditioning vector.
        A function takes the keys its forward names (or ``**kwargs``); tensors in the
        context get gradients."""
        if self._adaptive is not None:
            self._check_state(u0)
            self._adaptive.check_context(context)
            return self._adaptive(u0, self.return_trajectory, context)
        if not self.return_trajectory:
            return self.integrate(Carry(u0), context=context).u
        states = [u0]
        self.integrate(Carry(u0), trajectory=states, context=context)
        same = all(s.shape == u0.shape for s in states)
        return torch.stack(states) if same else states

    def integrate(self, carry: Carry, trajectory: Optional[list] = None,
                  context: Optional[Context] = None) -> Carry:
        """Advance ``carry`` through every step, appending each new state to
        ``trajectory`` if given; chaining stages passes the history on. ``context`` as
        in :meth:`forward`."""
        u, past = carry
        context = dict(context or {})
        self._check_state(u)
        if self._adaptive is not None:
            self._adaptive.check_context(context)
            return Carry(self._adaptive(u, False, context))
        if context and frozenset(context) not in self._checked_keys:
            for step in self.layers:
                step.check_context(context)
            self._checked_keys.add(frozenset(context))
        if past and self._has_coefficients and not self.carry_in:
            raise ValueError(f"this {self.spec.label!r} net was handed a history but built without carry_in=True, "
                             "so its first steps have no coefficients to use it: build later stages with "
                             "carry_in=True")
        if self.memory_efficient:
            if trajectory is not None:
                raise ValueError("memory_efficient=True keeps no states but the last; integrate(trajectory=...) "
                                 "needs memory_efficient=False")
            return Carry(*self._reversible(u, tuple(past), context))
        past = tuple(past)
        for step in self.layers:
            u, past = step.advance(u, past, context)
            if trajectory is not None:
                trajectory.append(u)
        return Carry(u, past)

    def _reversible(self, u: Tensor, past: Past, context: Context) -> tuple[Tensor, Past]:
        """The invertible runs of steps without their states; transitions as usual."""
        run: list[Step] = []
        for step in list(self.layers) + [None]:
            if step is not None and not step.transition:
                run.append(step)
                continue
            if run:
                u, past = reversible_steps(run, u, past, context)
                run = []
            if step is not None:
                u, past = step.advance(u, past, context)
        return u, past

    @torch.no_grad()
    def inverse(self, u: Tensor, past: Past = (), **context) -> Tensor:
        """u_0 from u_N (and, for a multistep scheme, the history ``past`` the last step
        left), each step inverted, last first; for an invertible scheme. ``context`` as
        the forward pass had it."""
        self._check_state(u)
        if self._adaptive is not None:
            raise ValueError("inverse() runs the steps of an invertible fixed-step scheme backwards; "
                             f"{self.spec.name!r} is adaptive")
        past = tuple(past)
        for step in reversed(self.layers):
            step.check_context(context)
            u, past = step.inverse(u, past, context)
        return u

    def step(self, n: int, u: Tensor, past: Past = (), **context) -> Tensor:
        """u_{n+1} from u_n (and the history ``past``, for a step that reads one): step n
        alone, with its coefficients, in the net's training or eval mode."""
        return self.layers[n](u, past, **context)[0]

    def _check_state(self, u: Tensor) -> None:
        if not isinstance(u, Tensor):
            raise TypeError(f"ODENet takes a tensor state, got {type(u).__name__}")
        if self.spec.scheme is not None and self.spec.scheme.splits_state and (u.dim() < 2 or u.shape[1] % 2):
            raise ValueError(f"solver {self.spec.name!r} splits the state into two equal halves along dim 1; "
                             f"got shape {tuple(u.shape)} (dim 1 must be even)")


def _check_adaptive(name: str, shared: bool, shortcuts, activation, checkpoint: bool, memory_efficient: bool) -> None:
    if not shared:
        raise ValueError(f"adaptive solver {name!r} integrates a single shared f; got per-step modules "
                         "(use a fixed-step solver for a residual network)")
    if activation is not None or checkpoint or memory_efficient or shortcuts is not None:
        raise ValueError(f"adaptive solver {name!r} hands the whole integration to torchdiffeq; it takes no "
                         "activation, shortcuts, checkpoint or memory_efficient (adjoint=True saves memory)")


def _check_memory_efficient(spec: SolverSpec, return_trajectory: bool, checkpoint: bool,
                            activation: Optional[nn.Module]) -> None:
    if not spec.scheme.invertible:
        raise ValueError(f"memory_efficient=True rebuilds the states by inverting the steps; {spec.name!r} is not "
                         "invertible (e.g. 'revnet' is). checkpoint=True saves memory for any scheme")
    if return_trajectory:
        raise ValueError("return_trajectory keeps every state, which memory_efficient=True exists to avoid; "
                         "use one or the other")
    if spec.noise or checkpoint or activation is not None:
        raise ValueError("memory_efficient=True recomputes states by inverting the steps, which needs "
                         "noise=None, activation=None and checkpoint=False")
