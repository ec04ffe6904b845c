"""Checkpoints: written atomically, read with ``weights_only=True`` and validated.

A checkpoint holds only tensors, numbers, strings, lists and dicts: the model's and
optimizer's states, the gradient scaler's, the position in the run (epochs done,
batches done of the next epoch, optimizer steps), the running sums of a part-done
epoch, every process's random states, the run's settings and its metrics so far, and
the model's number of classes and input channels.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Union

import torch

from odenets.files import atomic_write

from .errors import CheckpointError

FORMAT, VERSION = "odenets-checkpoint", 1
_FIELDS = {"format": str, "version": int, "config": dict, "model": dict, "optimizer": dict, "scaler": dict,
           "epoch": int, "batch": int, "step": int, "partial": dict, "history": list, "rng": list,
           "world_size": int}
_SIZES = ("num_classes", "in_chans")  # the model's, saved since they were added; older files lack them


def save(path: Union[str, Path], state: dict) -> None:
    """Write checkpoint ``state`` (see :func:`load` for its fields) atomically."""
    atomic_write(path, lambda f: torch.save({"format": FORMAT, "version": VERSION, **state}, f))


def load(path: Union[str, Path]) -> dict:
    """Read and validate a checkpoint (raise CheckpointError saying what is wrong with
    it); the returned dict also holds ``path``, where it was read from."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged or unsafe file
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found:
            reason = (f"it holds a pickled {found.group(1)}, and only tensors, numbers, strings, lists and dicts are "
                      "loaded, for safety")
        else:
            detail = "" if isinstance(e, pickle.UnpicklingError) else (str(e).strip().splitlines() or [""])[0]
            reason = f"damaged, truncated or not a torch file: {type(e).__name__}"
            reason += f": {detail.split('. ')[0][:200]}" if detail else ""
        raise CheckpointError(f"{path} is not a readable checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        what = f"a dict with keys {', '.join(map(str, list(state)[:8]))}" if isinstance(state, dict) \
            else f"a {type(state).__name__}"
        raise CheckpointError(f"{path} is not an odenets checkpoint: it holds {what}. A checkpoint is written by "
                              "`odenets train` as <out>/checkpoint.pt")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path} is a checkpoint of version {state.get('version')!r}; this odenets reads "
                              f"version {VERSION}")
    for key, kind in _FIELDS.items():
        if not isinstance(state.get(key), kind):
            raise CheckpointError(f"{path} is damaged: field {key!r} is missing or not a {kind.__name__}")
    for key in _SIZES:
        if key in state and not (isinstance(state[key], int) and state[key] >= 1):
            raise CheckpointError(f"{path} is damaged: field {key!r} is not a positive integer")
    if not all(isinstance(v, torch.Tensor) for v in state["model"].values()):
        raise CheckpointError(f"{path} is damaged: the model state holds something other than tensors")
    return {**state, "path": str(path)}


def restore(module: torch.nn.Module, state: dict, path: Union[str, Path], what: str) -> None:
    """Load ``state`` into ``module`` (a model or an optimizer), turning a mismatch into
    a CheckpointError that names the checkpoint."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: the saved {what} does not fit this run's {what}: "
                              f"{str(e).strip().splitlines()[0][:400]}") from None
