"""Checkpoints: written atomically, read with ``weights_only=True`` and validated.

A checkpoint holds only tensors, numbers, strings, lists and dicts: the model's and
optimizer's states, the gradient scaler's, the position in the run (epochs done,
batches done of the next epoch, optimizer steps), the running sums of a part-done
epoch, every process's random states, the run's settings and its metrics so far, and
the model's number of classes and input channels, and the data set's class names.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from odenets.compat import upgrade
from odenets.files import atomic_write

from ..errors import CheckpointError
from ..settings.config import validate

FORMAT, VERSION = "odenets-checkpoint", 2
READS = (1, 2)
"""Version 1 (odenets 0.1) kept step coefficients and shortcuts in the ODENet's own lists
and named He et al.'s CIFAR networks under LM ``lm_resnetN``: it is read and mapped
(:func:`_from_version_1`, :func:`odenets.compat.upgrade`)."""
_V1_LM_CIFAR = {f"lm_resnet{d}": f"resnet{d}" for d in (8, 14, 20, 32, 44, 56, 110, 164)}
_V1_SD = {"lm_resnet56_sd": ("resnet56", 0.8), "lm_resnet110_sd": ("resnet110", 0.5)}
_FIELDS = {"format": str, "version": int, "config": dict, "model": dict, "optimizer": dict, "scaler": dict,
           "epoch": int, "batch": int, "step": int, "partial": dict, "history": list, "rng": list,
           "world_size": int}
_COUNTS = {"epoch": 0, "batch": 0, "step": 0, "world_size": 1}  # the least each may be
_SIZES = ("num_classes", "in_chans")  # the model's, saved since they were added; older files lack them


def save(path: Union[str, Path], state: dict) -> None:
    """Write checkpoint ``state`` (see :func:`load` for its fields) atomically.

    It is serialised in memory first and then written as bytes, so that a failed
    write (a full disk) is the OSError saying so, not torch's internal error."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def load(path: Union[str, Path]) -> dict:
    """Read and validate a checkpoint (raise CheckpointError saying what is wrong with
    it); the returned dict also holds ``path``, where it was read from."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged or unsafe file
        unsafe = _unsafe_globals(path)
        if unsafe:
            reason = (f"it holds a pickled {', '.join(unsafe[:3])}, and only tensors, numbers, strings, lists and "
                      "dicts are loaded, for safety")
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
    if state.get("version") not in READS:
        raise CheckpointError(f"{path} is a checkpoint of version {state.get('version')!r}; this odenets reads "
                              f"versions {', '.join(map(str, READS))}")
    if state["version"] == 1 and isinstance(state.get("config"), dict):
        state["config"] = _from_version_1(state["config"])
    for key, kind in _FIELDS.items():
        if not isinstance(state.get(key), kind):
            raise CheckpointError(f"{path} is damaged: field {key!r} is missing or not a {kind.__name__}")
    validate(state["config"], f"{path} is damaged: its config")
    for key, least in _COUNTS.items():
        if state[key] < least:
            raise CheckpointError(f"{path} is damaged: field {key!r} is {state[key]}, less than {least}")
    for key in _SIZES:
        if key in state and not (isinstance(state[key], int) and state[key] >= 1):
            raise CheckpointError(f"{path} is damaged: field {key!r} is not a positive integer")
    classes = state.get("classes")  # saved since they were added; older files lack them
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)
                                    and len(classes) == state.get("num_classes", len(classes))):
        raise CheckpointError(f"{path} is damaged: field 'classes' is not a list of num_classes names")
    if not isinstance(state.get("split"), (dict, type(None))):
        raise CheckpointError(f"{path} is damaged: field 'split' is not a table")
    if not all(isinstance(v, torch.Tensor) for v in state["model"].values()):
        raise CheckpointError(f"{path} is damaged: the model state holds something other than tensors")
    bad = next((k for k, v in state["model"].items() if v.is_floating_point() and not v.isfinite().all()), None)
    if bad is not None:
        raise CheckpointError(f"{path} holds NaN or infinite weights (first in {bad}); `odenets train` never saves "
                              "such weights, so the file was altered or damaged")
    return {**state, "path": str(path)}


def check_split(state: dict, split: Optional[dict], where: str) -> None:
    """Raise a CheckpointError unless the checkpoint's test split (where it saved one: a
    folder split when it was trained, :mod:`odenets.app.data.split`) is ``split``, the one
    drawn now from the data ``where``: another split would test on other images, some
    of them trained on."""
    if "split" not in state:  # written before splits were recorded
        return
    saved = state["split"]
    if (saved or {}).get("sha256") != (split or {}).get("sha256"):
        def said(s):
            return (f"{s['held_out']} images held out ({100 * s['fraction']:g}% of each class, split seed {s['seed']}, "
                    f"names' SHA-256 {s['sha256'][:12]})" if s else "its own test/ or val/ folder")

        raise CheckpointError(f"{state['path']} was tested on {said(saved)}, but {where} gives {said(split)}: "
                              "another test set. Use the same folder, files and --test-split as its training")


def check_classes(state: dict, classes: list[str], where: str) -> None:
    """Raise a CheckpointError unless the checkpoint's class names (where it saved
    them) are ``classes``, those of the data ``where``: labels mean classes by position."""
    saved: Optional[list] = state.get("classes")
    if saved is not None and list(saved) != list(classes):
        first = next((i for i, (a, b) in enumerate(zip(saved, classes)) if a != b), min(len(saved), len(classes)))
        theirs = saved[first] if first < len(saved) else "nothing"
        mine = classes[first] if first < len(classes) else "nothing"
        raise CheckpointError(f"{state['path']} was trained on {len(saved)} classes, but {where} has "
                              f"{len(classes)}, and class {first} is {theirs!r} there but {mine!r} here; use the "
                              "data it was trained on")


def _from_version_1(config: dict) -> dict:
    """A version-1 run's settings for today's zoo: its ``lm_resnetN`` (CIFAR) was
    He et al.'s ``resnetN`` under LM (today's ``lm_resnetN`` is the authors' network), and
    its ``lm_resnet56_sd``/``lm_resnet110_sd`` that with Huang et al.'s stochastic depth."""
    model, solver, options = config.get("model"), config.get("solver"), dict(config.get("options") or {})
    if model in _V1_LM_CIFAR:
        model, solver = _V1_LM_CIFAR[model], solver or "lm"
    elif model in _V1_SD:
        model, p_last = _V1_SD[model]
        solver = solver or "lm"
        options.setdefault("noise", "stochastic_depth")
        options.setdefault("survival", p_last)
    return {**config, "model": model, "solver": solver, "options": options}


def optimizer_from_version_1(saved: dict, saved_model: dict, model: nn.Module,
                             optimizer: torch.optim.Optimizer) -> dict:
    """A version-1 optimizer state (one group, over 0.1's parameter order) for today's
    optimizer, whose scheme coefficients have a group of their own: every parameter's
    buffers moved to its place, and each group given the saved group's settings, so the
    run goes on as it was trained. Returned as saved where it cannot be mapped (the
    mismatch is then reported by :func:`restore`)."""
    groups = saved.get("param_groups")
    if not (isinstance(groups, list) and len(groups) == 1 and isinstance(groups[0], dict)
            and isinstance(saved.get("state"), dict) and len(optimizer.param_groups) > 1):
        return saved
    names = {id(p): name for name, p in model.named_parameters()}
    order = [new for key in saved_model for new in upgrade(model, {key: None}) if new in names.values()]
    if len(order) != len(groups[0].get("params", ())):
        return saved
    now = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    place = {name: i for i, name in enumerate(now)}
    state = {place[order[pos]]: saved["state"][i] for pos, i in enumerate(groups[0]["params"]) if i in saved["state"]}
    settings = {k: v for k, v in groups[0].items() if k != "params"}
    start, new_groups = 0, []
    for g in optimizer.param_groups:
        new_groups.append({**settings, "params": list(range(start, start + len(g["params"])))})
        start += len(g["params"])
    return {"state": state, "param_groups": new_groups}


def restore(module: Union[nn.Module, torch.optim.Optimizer], state: dict, path: Union[str, Path], what: str) -> None:
    """Load ``state`` into ``module`` (a model or an optimizer), first checking that it
    fits: a mismatch is a CheckpointError that names the checkpoint and the first
    missing or unexpected entry, or the first shape that differs."""
    if isinstance(module, nn.Module):
        state = upgrade(module, state)
    problem = _misfit(module, state)
    if problem:
        raise CheckpointError(f"{path}: the saved {what} does not fit this run's {what}: {problem}")
    module.load_state_dict(state)


def _misfit(module: Union[nn.Module, torch.optim.Optimizer], state: dict) -> Optional[str]:
    if isinstance(module, nn.Module):
        mine = module.state_dict()
        missing = next((k for k in mine if k not in state), None)
        if missing is not None:
            return f"it lacks {missing!r}"
        unexpected = next((k for k in state if k not in mine), None)
        if unexpected is not None:
            return f"it has {unexpected!r}, which this model does not"
        return next((f"{k} has shape {tuple(state[k].shape)} there, {tuple(v.shape)} here"
                     for k, v in mine.items() if state[k].shape != v.shape), None)
    groups, saved = module.param_groups, state.get("param_groups")
    if not isinstance(saved, list) or not isinstance(state.get("state"), dict) or len(saved) != len(groups):
        return f"it has {len(saved) if isinstance(saved, list) else 'no'} parameter groups, this one {len(groups)}"
    for i, (a, b) in enumerate(zip(saved, groups)):
        if not isinstance(a, dict) or not isinstance(a.get("params"), list) or len(a["params"]) != len(b["params"]):
            return f"its parameter group {i} does not hold the {len(b['params'])} parameters of this one"
    params = dict(zip((i for g in saved for i in g["params"]), (p for g in groups for p in g["params"])))
    for i, buffers in state["state"].items():
        if i not in params or not isinstance(buffers, dict):
            return f"it has a state for parameter {i!r}, which this optimizer does not"
        for name, v in buffers.items():
            if isinstance(v, torch.Tensor) and v.dim() and v.shape != params[i].shape:
                return f"the {name} of parameter {i} has shape {tuple(v.shape)} there, {tuple(params[i].shape)} here"
    return None


def _unsafe_globals(path: Path) -> list[str]:
    """The classes and functions a torch file would unpickle that ``weights_only``
    refuses (none for a file that is not one torch can read)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a torch zip file, or a damaged one: nothing to name
        return []
