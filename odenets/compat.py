"""State dicts written by odenets 0.1 (before steps were modules) load into today's ODENet.

0.1 kept step n's trained coefficients at ``coefs.<n>.<name>`` and found a step's
shortcut as the ``shortcut`` child of its module (``fns.<n>.shortcut.*``, or
``fns.<n>.0.shortcut.*`` for a pair's first function); today both belong to the step,
``layers.<n>.coefs.<name>`` and ``layers.<n>.shortcut.*``.
"""
from __future__ import annotations

import re

from torch import nn

_COEF = re.compile(r"coefs\.(\d+)\.(.+)")
_SHORTCUT = re.compile(r"fns\.(\d+)\.(?:0\.)?shortcut\.(.+)")


def upgrade(model: nn.Module, state_dict: dict) -> dict:
    """``state_dict`` (of ``model``) with 0.1's keys of every ODENet in it renamed:
    what loading it would do, for a caller that compares keys first."""
    from .odenet import ODENet

    state = dict(state_dict)
    for name, m in model.named_modules():
        if isinstance(m, ODENet):
            map_v1_keys(m, state, f"{name}." if name else "")
    return state


def map_v1_keys(net: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """A ``load_state_dict`` pre-hook of ODENet: rename 0.1's keys of ``net`` in place.
    A key is renamed only where today's net has no such key of its own (a module that
    still holds a child named ``shortcut`` keeps it)."""
    own = None
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        coef, cut = _COEF.fullmatch(rest), _SHORTCUT.fullmatch(rest)
        if coef:
            new = f"layers.{coef[1]}.coefs.{coef[2]}"
        elif cut and int(cut[1]) < len(net.layers) and net.layers[int(cut[1])].shortcut is not None:
            own = set(net.state_dict(keep_vars=True)) if own is None else own
            if rest in own:
                continue
            new = f"layers.{cut[1]}.shortcut.{cut[2]}"
        else:
            continue
        state_dict[prefix + new] = state_dict.pop(key)
