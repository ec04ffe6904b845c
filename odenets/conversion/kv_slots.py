"""A key-value cache for every evaluation of a block, so that any scheme generates with
the cache on.

A scheme that evaluates a block several times per step (a Runge-Kutta stage, the
starter steps of Adams-Bashforth) attends, at its e-th evaluation of block L, to the
keys and values the earlier tokens produced at that same evaluation: every scheme acts
on each position alone, so the e-th evaluation of block L sees, for each earlier token,
the state that token had at the same point. Evaluation 0 uses the model's own cache
layer; the others get cache layers of their own, kept on the cache object (greedy and
sampled generation; beam search reorders the model's own layers only)."""
from __future__ import annotations

from collections import Counter

from torch import Tensor


CACHE_KEYS = ("cache", "past_key_values")
"""The names a block's key-value cache goes by (transformers renamed it in 5.x)."""


class Evaluations:
    """The cache as one forward pass hands it to its blocks: :meth:`slot` gives each
    evaluation of a block its own cache layer. One per forward pass."""

    def __init__(self, cache):
        self.cache = cache
        self.seen: Counter[int] = Counter()

    def slot(self, layer: int):
        """The cache the next evaluation of block ``layer`` reads and extends."""
        e = self.seen[layer]
        self.seen[layer] += 1
        if e == 0:
            return self.cache
        extra = self.cache.__dict__.setdefault("odenets_evaluations", {})
        if (layer, e) not in extra:
            own = self.cache.layers[layer]
            window = getattr(own, "sliding_window", None)
            extra[(layer, e)] = type(own)() if window is None else type(own)(sliding_window=window)
        return _Layer(extra[(layer, e)])


class _Layer:
    """One cache layer answering a block's ``cache.update(keys, values, layer_idx)``."""

    def __init__(self, layer):
        self.layer = layer

    def update(self, keys: Tensor, values: Tensor, layer_idx: int, *args, **kwargs) -> tuple[Tensor, Tensor]:
        return self.layer.update(keys, values, *args, **kwargs)
