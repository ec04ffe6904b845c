"""Convert a residual network into the same network whose runs of residual blocks are
ODENets over the blocks: every weight kept, any scheme."""
from __future__ import annotations

import copy
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from odenets.solvers import Past, SolverSpec

from ..odenet import Carry, ODENet
from ..step import Context
from .layer_list import LayerList, ListStage
from .registry import DOCS, Residual, adapter_for, residuals, type_name
from .torch_nn import Encoder

NET_OPTIONS = ("noise", "survival", "dt", "checkpoint", "memory_efficient")
"""Options :func:`convert` gives every stage's ODENet; the others go to the scheme."""


class _Chain:
    """What a stage hands the next within one forward pass: its output, and the history
    a multistep scheme reads across the boundary."""

    def __init__(self):
        self.u: Optional[Tensor] = None
        self.past: Past = ()

    def take(self, x: Tensor) -> Past:
        """The history behind ``x`` if ``x`` is what the last stage returned, else none;
        the chain is emptied either way (no state outlives a forward pass)."""
        past = self.past if self.u is x else ()
        self.u, self.past = None, ()
        return past


class ResidualStage(nn.Module):
    """A run of residual blocks as one :class:`~odenets.ODENet`, standing where the
    blocks' container stood. A stage built with ``net.carry_in`` continues the history
    of the stage before it when it is given that stage's output."""

    def __init__(self, net: ODENet, chain: _Chain, hands_on: bool):
        super().__init__()
        self.net = net
        self._chain, self.hands_on = chain, hands_on

    def __iter__(self):
        """The stage as the one block of its container: a model that calls its blocks one
        by one with extra arguments (timm's ViT with an attention mask) calls the stage
        with them, as the steps' context."""
        return iter((self,))

    def forward(self, x: Tensor, **context) -> Tensor:
        return self.run(x, context)

    def run(self, x: Tensor, context: Context, trajectory: Optional[list] = None) -> Tensor:
        """The stage's output for ``x``, each step's output appended to ``trajectory`` if
        given. A scheme that splits the state in two (revnet) runs on the pair (x, x),
        ``torch.cat((x, x), 1)``, and the stage returns the mean of the two halves of its
        last state (RevNet's and the Reformer's reading of a stack of blocks)."""
        past = self._chain.take(x) if self.net.carry_in else ()
        split = self.net.scheme is not None and self.net.scheme.splits_state
        states = None if trajectory is None else []
        u, past = self.net.integrate(Carry(torch.cat((x, x), 1) if split else x, past), trajectory=states,
                                     context=context)
        if split:
            u = _halves_mean(u)
        if trajectory is not None:
            trajectory.extend(map(_halves_mean, states) if split else states)
        if self.hands_on:
            self._chain.u, self._chain.past = u, past
        return u


def _halves_mean(u: Tensor) -> Tensor:
    a, b = u.chunk(2, dim=1)
    return (a + b) / 2


def convert(model: nn.Module, solver: Union[str, SolverSpec] = "lm", **options) -> nn.Module:
    """A copy of ``model`` whose residual stages are ODENets over its own blocks.

    Every ``nn.Sequential`` whose children are all blocks with an adapter (torchvision
    and timm ResNets, timm ConvNeXt and ViT/DeiT, pre-norm ``nn.TransformerEncoder``;
    more with :func:`register_block`) becomes a :class:`ResidualStage`: one step per residual
    sub-step (two per transformer block), the block's shortcut as the step's shortcut.
    Stages that are consecutive children of one module are chained, so a multistep
    scheme's recurrence runs across them. The blocks and every weight are deep copies.

    Where the scheme has a point at which its step is forward Euler (``lm``: k_n = 0,
    ``euler`` always; :attr:`solvers.Scheme.euler_options`), that point is the default,
    and the result computes ``model``'s function; other schemes (``midpoint``,
    ``momentum``) start elsewhere. ``options``: ``noise``, ``survival``, ``dt``,
    ``checkpoint``, ``memory_efficient`` for every stage's ODENet, the rest for the
    scheme (``k_init``). A Hugging Face model keeps its class and records the conversion
    in its config, which ``save_pretrained`` writes and :func:`from_pretrained` reads.
    The result keeps ``model``'s device, dtype and train/eval mode.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert takes an nn.Module, got {type(model).__name__}")
    given = dict(options)
    net_options = {k: options.pop(k) for k in NET_OPTIONS if k in options}
    spec = SolverSpec.parse(solver, noise=net_options.pop("noise", None),
                            survival=net_options.pop("survival", None), **options)
    _check_scheme(spec)
    point = spec.scheme.euler_options or {}
    defaults = {k: v for k, v in point.items() if k not in options}
    if defaults:
        spec = SolverSpec.parse(spec, **defaults)
    holder = nn.Module()  # the parent of a model that is itself a container
    holder.model = copy.deepcopy(model)
    found = _containers(holder)
    if not found and any(isinstance(m, ODENet) for m in model.modules()):
        raise ValueError(f"{type(model).__name__} is already converted: its residual stages are ODENets. Convert the "
                         "original network to use another scheme, or train this one as it is")
    if not found:
        raise ValueError(f"found no residual block with an adapter in {type(model).__name__}; block types seen: "
                         f"{', '.join(_candidates(model)) or 'none'}. Register one with odenets.register_block "
                         f"(see {DOCS})")
    plans = [(parent, name, _steps(blocks, spec)) for parent, name, blocks in found]
    depth = sum(len(steps) for _, _, steps in plans)
    survival = spec.survival_probabilities(depth) if spec.survival is not None else None
    chain, first = _Chain(), 0
    for i, (parent, name, steps) in enumerate(plans):
        stage_spec = spec if survival is None else spec.replace(survival=tuple(survival[first:first + len(steps)]))
        first += len(steps)
        carry_in = i > 0 and _adjacent(plans[i - 1], (parent, name))
        hands_on = i + 1 < len(plans) and _adjacent((parent, name), plans[i + 1])
        if spec.functions == 2:
            net = ODENet([(a.branch, b.branch) for a, b in steps], stage_spec, carry_in=carry_in, **net_options)
        else:
            net = ODENet([r.branch for r in steps], stage_spec, shortcuts=[r.shortcut for r in steps],
                         activation=_activation(steps, name), carry_in=carry_in, **net_options)
        old = getattr(parent, name)
        _match(net, old)
        stage = ResidualStage(net, chain, hands_on).train(old.training)
        if isinstance(old, nn.TransformerEncoder):
            stage = Encoder(stage, old.norm).train(old.training)
        elif isinstance(old, nn.ModuleList):
            per_block = len(steps) // len(old)
            stage = LayerList([ListStage(stage, old[0], per_block)]).train(old.training)
        setattr(parent, name, stage)
    if type(model).__module__.startswith("transformers."):
        from .hf import remember
        remember(holder.model, solver, given)
    return holder.model


def _check_scheme(spec: SolverSpec) -> None:
    if spec.adaptive:
        raise ValueError(f"adaptive solver {spec.name!r} integrates one shared f; a converted network has a block "
                         "per step (choose a fixed-step solver)")
    if spec.functions not in (1, 2):
        raise ValueError(f"solver {spec.label!r} takes {spec.functions} functions per step; a converted network has "
                         "one residual branch per step, or two per block (choose a one-function scheme such as "
                         "'lm', 'euler', 'midpoint', 'momentum', or a pair scheme such as 'revnet')")


def _steps(blocks: Sequence[nn.Module], spec: SolverSpec) -> list:
    """A stage's steps: every residual sub-step of its blocks for a one-function scheme;
    for a pair scheme (revnet: F and G), each block's two sub-steps (a transformer
    block's attention and MLP) as one step's two functions."""
    if spec.functions == 1:
        return [r for block in blocks for r in residuals(block)]
    pairs = []
    for block in blocks:
        subs = list(residuals(block))
        if len(subs) != 2 or any(r.shortcut is not None or r.activation is not None for r in subs):
            why = (f"has {len(subs)} residual sub-step(s)" if len(subs) != 2 else
                   "changes the state's shape" if any(r.shortcut is not None for r in subs) else
                   "applies a norm or an activation after its additions (post-norm)")
            raise ValueError(f"solver {spec.label!r} takes a pair of functions per step, a block's two sub-steps: a "
                             f"{type_name(type(block))} {why}. A pair scheme converts blocks of two pre-norm "
                             "sub-steps without a shortcut (GPT-2, Llama, ViT, a pre-norm nn.TransformerEncoder); "
                             "for others choose a one-function scheme ('momentum' is invertible too)")
        pairs.append(tuple(subs))
    return pairs


def _containers(model: nn.Module) -> list[tuple[nn.Module, str, list[nn.Module]]]:
    """(parent, child name, blocks) of each container of adapted blocks, in module order:
    an ``nn.Sequential`` or ``nn.ModuleList`` of them, or an ``nn.TransformerEncoder``'s layers."""
    out = []

    def visit(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            blocks = list(child.layers) if isinstance(child, nn.TransformerEncoder) else \
                list(child) if isinstance(child, (nn.Sequential, nn.ModuleList)) else []
            known = [adapter_for(b) is not None for b in blocks]
            if blocks and all(known):
                out.append((parent, name, blocks))
                continue
            if any(known):  # residual blocks beside one without an adapter: most likely a block too
                unknown = sorted({type_name(type(b)) for b, k in zip(blocks, known) if not k})
                raise ValueError(f"{name!r} mixes residual blocks odenets knows with {', '.join(unknown)}, which has "
                                 "no adapter: a stage is a Sequential of residual blocks only. If it is a residual "
                                 f"block, register an adapter with odenets.register_block (see {DOCS})")
            visit(child)

    visit(model)
    return out


def _adjacent(a: tuple, b: tuple) -> bool:
    """Whether container b is the child right after container a in one parent, which a
    residual network's forward (torchvision's, timm's) calls in a row."""
    (pa, na), (pb, nb) = a[:2], b[:2]
    if pa is not pb:
        return False
    names = [n for n, _ in pa.named_children()]
    return names.index(nb) == names.index(na) + 1


def _activation(steps: Sequence[Residual], where: str) -> Union[None, nn.Module, list[nn.Module]]:
    """What follows the additions of a run of steps: one module for all (torchvision's
    ReLU), or each step's own where it has weights (a post-norm block's LayerNorms)."""
    acts = [r.activation for r in steps]
    if all(a is not None for a in acts) and any(len(a.state_dict()) for a in acts):
        return acts
    kinds = {None if a is None else (type(a), a.extra_repr()) for a in acts}
    if len(kinds) > 1:
        raise ValueError(f"the blocks of {where!r} apply different activations after their additions; a stage "
                         "applies one after every step")
    return acts[0]


def _match(net: ODENet, old: nn.Module) -> None:
    """Put the new coefficients on the device and dtype of the blocks they join."""
    ref = next(iter(old.parameters()), None)
    if ref is not None:
        for p in net.coefficients():
            p.data = p.data.to(device=ref.device, dtype=ref.dtype)


def _candidates(model: nn.Module) -> list[str]:
    """Types of the modules inside containers that are not torch's own: likely blocks."""
    seen = []
    for m in model.modules():
        if isinstance(m, (nn.Sequential, nn.ModuleList)):
            for b in m.children():
                if not type(b).__module__.startswith("torch.") and type_name(type(b)) not in seen:
                    seen.append(type_name(type(b)))
    return seen
