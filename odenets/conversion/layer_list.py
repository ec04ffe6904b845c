"""A converted ``nn.ModuleList`` of blocks, which its owner's forward calls one by one
with the same arguments (Hugging Face's models: ``for layer in self.layers:
h = layer(h, attention_mask=..., position_embeddings=..., cache=...)``): the list keeps
one module, which runs the whole stage with those arguments as the steps' context."""
from __future__ import annotations

import inspect
import sys
from typing import Optional

from torch import Tensor, nn

from .kv_slots import CACHE_KEYS, Evaluations


class ListStage(nn.Module):
    """The stage standing in a layer list: called as a block is (the block's signature
    binds the arguments), it integrates the whole run of blocks with every argument but
    the state as the context of every step.

    A key-value cache among the arguments is handed on as :class:`Evaluations`, which
    gives every evaluation of a block its own cache layer (any scheme generates with the
    cache on). ``per_block``: steps per block, to report each block's output where
    Hugging Face's ``output_hidden_states`` asks for it."""

    def __init__(self, stage: nn.Module, block: nn.Module, per_block: int):
        super().__init__()
        self.stage = stage
        self.per_block = per_block
        params = inspect.signature(block.forward).parameters.values()
        self._positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self._named = {p.name for p in params if p.kind != p.VAR_POSITIONAL}
        self._any_keyword = any(p.kind == p.VAR_KEYWORD for p in params)

    def forward(self, *args, **kwargs) -> Tensor:
        """Bound as the block's signature binds (without inspect.bind's cost on every call)."""
        if len(args) > len(self._positional):
            raise TypeError(f"a block takes at most {len(self._positional)} positional arguments, got {len(args)}")
        context = dict(zip(self._positional, args))
        for key, value in kwargs.items():
            if key in context or (key not in self._named and not self._any_keyword):
                raise TypeError(f"a block got {'two values' if key in context else 'an unexpected argument'} "
                                f"for {key!r}")
            context[key] = value
        x = context.pop(self._positional[0])
        for key in CACHE_KEYS:
            if context.get(key) is not None:
                context[key] = Evaluations(context[key])
        hidden = _hidden_states_requested()
        if hidden is None:
            return self.stage(x, **context)
        states = [x]
        u = self.stage.run(x, context, trajectory=states)
        for s in states[::self.per_block]:
            hidden(s)
        return u


def _hidden_states_requested():
    """Where Hugging Face's ``output_hidden_states`` collects each block's output in this
    forward pass (a function taking one state), or None when nobody asked."""
    module = sys.modules.get("transformers.utils.output_capturing")
    collector = getattr(module, "_active_collector", None)  # transformers 5's hook-based capture
    if collector is None:
        return None
    collected: Optional[dict] = collector.get()
    if not collected:
        return None
    if "attentions" in collected:
        raise ValueError("a converted model does not return attention weights (output_attentions=True): its "
                         "attention steps return the attended values only")
    if "hidden_states" not in collected:
        return None
    states, selection = collected["hidden_states"], collected.get("_hidden_states_layers")

    def append(s: Tensor) -> None:
        states.append(s if selection is None or len(states) in selection else None)
    return append


class LayerList(nn.ModuleList):
    """The layer list its owner iterates: one :class:`ListStage`, slicing to itself."""

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self
        return super().__getitem__(index)
