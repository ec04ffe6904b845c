"""The settings of one training run, from the command line, the recipe and a checkpoint.

Settings that define the run's mathematics (model, solver, data, hyper-parameters,
seed) come from the flags given, else from a checkpoint being resumed, else from the
recipe; a flag that contradicts the checkpoint is an error. The rest (device, workers,
where the data lives, progress bars) may change between a run and its resumption.
The CPU thread count (``threads``; None: torch's default, OMP_NUM_THREADS or every core)
is one of these: it is recorded with the run, since float sums split over another number
of threads may differ in the last bits, but like the device it belongs to the machine,
and a run resumed, or a study's shard collected, on a machine with other cores must go
on rather than be refused.
"""
from __future__ import annotations

import argparse
import ast
import copy
import math
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any, Optional, Union

from odenets import solvers
from odenets.hints import describe, fits
from odenets.solvers import SolverSpec

from ..data import datasets
from ..data.datasets import DATASETS, LOADERS, ON_BAD_IMAGE
from ..data.description import Description
from ..errors import CheckpointError, UsageError
from .recipe import recipe

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""torch.compile's modes (used when ``compile`` is set); reduce-overhead replays each step as
CUDA graphs, without the host's launch of every kernel."""


@dataclass
class Config:
    """The settings of one training run, one field per ``odenets train`` flag.

    A hyper-parameter left None takes the data set's :func:`recipe` value in
    :meth:`resolved`; :meth:`check` validates every field in one place. The fields above
    ``device`` define the run (a resumed run must agree on them); those from ``device``
    on (:attr:`ENVIRONMENT`) say where and how it runs and may change on resume."""

    model: Optional[str] = None
    data: str = "digits"
    solver: Union[SolverSpec, str, None] = None
    options: dict = field(default_factory=dict)
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    momentum: Optional[float] = None
    weight_decay: Optional[float] = None
    k_lr: Optional[float] = None
    k_weight_decay: Optional[float] = None
    milestones: Optional[list[float]] = None
    seed: int = 0
    image_size: Optional[int] = None
    test_split: Optional[float] = None
    train_subset: Optional[int] = None
    amp: bool = False
    flip: bool = True
    # below: may differ when a run is resumed
    device: Optional[str] = None
    threads: Optional[int] = None
    compile: bool = False
    compile_mode: str = "default"
    channels_last: bool = False
    workers: int = 0
    data_dir: str = "data"
    download: bool = False
    on_bad_image: str = "stop"
    out: Optional[str] = None
    quiet: bool = False
    loader: Optional[str] = None
    tensorboard: bool = False
    tensorboard_every: int = 10

    ENVIRONMENT = ("device", "threads", "compile", "compile_mode", "channels_last", "workers", "data_dir", "download",
                   "on_bad_image", "out", "quiet", "loader", "tensorboard", "tensorboard_every")

    def __post_init__(self) -> None:
        """Where settings enter (flags, a settings file, a record read back, a Config made by
        hand): a solver given as text, and the scheme's settings among ``options`` (``noise``,
        ``survival``, lm's ``k_init``, ... as ``--opt`` and records give them), are parsed
        here, once, into :attr:`solver`, a SolverSpec (None: the model's own scheme, as it
        is); :attr:`options` keep the model's."""
        if isinstance(self.solver, str) or self.options:
            self.solver, self.options = _solver(self.model or recipe(self.data).model, self.solver, self.options)

    def resolved(self, data: Optional[Description] = None) -> "Config":
        """A copy with every unset hyper-parameter taken from the recipe of the data set
        ``data`` describes (found here, if needed and not given)."""
        defaults = ("model", "epochs", "batch_size", "lr", "momentum", "weight_decay", "milestones")
        if data is None and self.data == "imagefolder" and any(getattr(self, n) is None for n in defaults):
            data = datasets.find(self.data, self.data_dir, self.test_split, self.on_bad_image).description
        r = recipe(self.data, self.model or "", *((data.size_class, data.train_images) if data else ()))
        values = {}
        for name in defaults:
            if getattr(self, name) is None:
                values[name] = list(getattr(r, name)) if name == "milestones" else getattr(r, name)
        if self.out is None:
            values["out"] = f"runs/{self.data}-{values.get('model', self.model)}-{self.label}-seed{self.seed}"
        return replace(self, **values)

    @property
    def label(self) -> str:
        """How tables, folders and ``odenets eval`` name the solver, noise included: ``lm``,
        ``lm+sd``, ``default`` (the model's own)."""
        return "default" if self.solver is None else self.solver.label

    def record(self) -> dict:
        """The settings as JSON records them (config.json, result.json, checkpoints): the
        solver by its label, its options and stochastic depth's survival among ``options``,
        as ``--solver`` and ``--opt`` give them (and as odenets 0.1 wrote them); a Config
        made from a record (:func:`known`) reads them back into the SolverSpec."""
        values = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}
        spec = self.solver
        if spec is not None:
            p = spec.survival
            survival = {} if p is None else {"survival": p if isinstance(p, float) else list(p)}
            values.update(solver=spec.label, options={**values["options"], **spec.options, **survival})
        return values

    def run_settings(self) -> dict:
        """The settings that define the run (as recorded): what a resumed run must share."""
        return {k: v for k, v in self.record().items() if k not in self.ENVIRONMENT}

    def check(self) -> "Config":
        """Raise a UsageError naming the choices for an unknown data set, model or solver,
        or a bad number; cheap, so done before any data is read."""
        from odenets import zoo

        if self.data not in DATASETS:
            raise UsageError(f"unknown data set {self.data!r}; choose one of: {', '.join(DATASETS)}")
        if self.model is not None and self.model not in zoo.list_models():
            raise _unknown_model(self.model)
        if self.on_bad_image not in ON_BAD_IMAGE:
            raise UsageError(f"--on-bad-image must be one of: {', '.join(ON_BAD_IMAGE)}")
        if self.compile_mode not in COMPILE_MODES:
            raise UsageError(f"--compile-mode must be one of: {', '.join(COMPILE_MODES)}; got {self.compile_mode!r}")
        if self.loader is not None and self.loader not in LOADERS:
            raise UsageError(f"--loader must be one of: {', '.join(LOADERS)}")
        if self.test_split is not None and not 0 < self.test_split < 1:
            raise UsageError(f"--test-split is the share of each class held out, between 0 and 1, got "
                             f"{self.test_split}")
        for name in ("epochs", "batch_size", "image_size", "train_subset", "threads", "tensorboard_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        for name in ("lr", "k_lr"):
            value = getattr(self, name)
            if value is not None and not 0 < value < math.inf:
                raise UsageError(f"--{name.replace('_', '-')} must be a positive finite number, got {value}")
        for name in ("seed", "momentum", "weight_decay", "k_weight_decay", "workers"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
            if value is not None and value == math.inf:
                raise UsageError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        if self.seed >= 2**64:
            raise UsageError(f"--seed must be below 2**64 (a 64-bit seed), got {self.seed}")
        if self.milestones is not None and not all(0 < m <= 1 for m in self.milestones):
            raise UsageError(f"--milestones are fractions of the epochs, each in (0, 1], got {self.milestones}")
        return self

    def resume(self, saved: dict, given: set[str]) -> "Config":
        """This run continued from a checkpoint's settings ``saved``: a run setting given
        as a flag must agree with it; an environment setting given overrides it."""
        theirs = Config(**known(saved))
        mine, recorded, asked = vars(self).copy(), theirs.record(), self.record()
        for name in known(saved):
            if name not in given:
                mine[name] = getattr(theirs, name)
            elif name not in self.ENVIRONMENT and asked[name] != recorded[name]:
                raise UsageError(f"the checkpoint was trained with {name}={recorded[name]!r}, but this command asks "
                                 f"for {asked[name]!r}; leave the flag out to resume, or start a new run in another "
                                 "--out")
        return Config(**mine)


def validate(saved: dict, where: str) -> None:
    """Raise a CheckpointError naming the first setting of ``saved`` (a run's config as
    read from its checkpoint or result) whose type is not the one Config declares, or
    whose value :meth:`Config.check` refuses."""
    hints = {**typing.get_type_hints(Config), "solver": Optional[str]}  # as recorded: its label
    for name, value in known(saved).items():
        if not fits(value, hints[name]):
            raise CheckpointError(f"{where} has {name}={value!r}, which is not {describe(hints[name])}")
    options = saved.get("options", {})
    if not all(isinstance(k, str) for k in options):
        raise CheckpointError(f"{where} has options={options!r}, whose names are not all strings")
    try:
        Config(**known(saved)).check()
    except UsageError as e:
        raise CheckpointError(f"{where} does not pass the checks of a run's settings: {e}") from None


def known(saved: dict) -> dict:
    """The settings of a checkpoint that this odenets knows. Any other (written by a newer
    version) is ignored, alike in ``eval``, ``analyze`` and ``--resume``: the saved weights
    must still fit the model rebuilt without it, which loading them checks."""
    names = {f.name for f in fields(Config)}
    return {k: v for k, v in saved.items() if k in names}


def _solver(model: str, solver: Union[SolverSpec, str, None], options: dict) -> tuple[Optional[SolverSpec], dict]:
    """(the solver's spec, the model's options) of ``model``: ``options`` told apart by the
    model's signature (:func:`zoo.split_options`), the scheme's read into the spec with
    ``solver`` (:func:`zoo.solver_spec`: its text parsed once; None, the model's own)."""
    from odenets import zoo

    if model not in zoo.list_models():
        raise _unknown_model(model)
    mine, scheme = zoo.split_options(model, options)
    if not scheme and not isinstance(solver, str):
        return solver, mine
    try:
        return zoo.solver_spec(model, solver, **scheme), mine
    except (ValueError, TypeError) as e:
        given = ", ".join(f"{k}={v!r}" for k, v in scheme.items()) or "no options"
        raise UsageError(f"cannot build {model} with solver {solver or 'its own'} and {given}: {e} (solvers: "
                         f"{', '.join(solvers.available())}, optionally with +{' or +'.join(solvers.VARIANTS)})"
                         ) from None


def _unknown_model(model: str) -> UsageError:
    from odenets import zoo

    return UsageError(f"unknown model {model!r}; choose one of: {', '.join(zoo.list_models())}")


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``['k_init=0.0', 'preact=true']`` -> ``{'k_init': 0.0, 'preact': True}``: true and
    false (any case) are booleans, none is None, numbers and lists of them are numbers,
    anything else is a string. Whether the option takes that type is checked where it is
    used (``zoo.create``), which names the option, the value and what it accepts."""
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--opt takes KEY=VALUE, got {pair!r}")
        options[key] = _value(value.strip())
    return options


def _value(text: str) -> Any:
    words = {"true": True, "false": False, "none": None}
    if text.lower() in words:
        return words[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def add_arguments(p: argparse.ArgumentParser, *, solver: bool = True) -> None:
    """The flags shared by ``train`` and ``ablate``. Hyper-parameters default to None,
    meaning: the checkpoint's when resuming, else the recipe's."""
    p.add_argument("--data", metavar="NAME",
                   help=f"data set: {', '.join(DATASETS)} (default: digits)")
    p.add_argument("--model", metavar="NAME", help="architecture from the zoo (default: the data set's recipe): "
                   "lm_resnetN is the LM-ResNet authors' CIFAR network (lm_resnet56_sd, lm_resnet110_sd with their "
                   "stochastic depth), preact_resnetN the same network under Euler, resnetN He et al.'s ResNet")
    if solver:
        p.add_argument("--solver", metavar="NAME", help="scheme that unrolls the residual blocks, e.g. euler, lm, "
                       "rk4, polynet, revnet, lm+sd (default: the model's own)")
    p.add_argument("--noise", choices=solvers.NOISES, help="noise on the residual terms: stochastic_depth (Huang et al.'s, "
                   "per sample), batch_drop (the LM-ResNet authors', per mini-batch) or shake_shake; the same as "
                   "the solver's +sd, +bd, +ss")
    p.add_argument("--survival", type=float, metavar="P", help="stochastic depth: survival of the last block")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="a model or solver option, e.g. k_init=0.0 "
                   "or preact=false (repeatable; true/false in any case, none, numbers and lists are typed, the rest "
                   "is text)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="the global batch, split over the processes")
    p.add_argument("--lr", type=float, help="base learning rate, divided by 10 at the milestones")
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--k-lr", type=float, metavar="LR", help="base learning rate of the schemes' trained "
                   "coefficients (LM's k_n), decayed with the other (default: --lr)")
    p.add_argument("--k-weight-decay", type=float, metavar="WD", help="weight decay of LM's k_n and other scheme "
                   "coefficients (default: 0, none)")
    p.add_argument("--milestones", type=float, nargs="+", metavar="FRACTION",
                   help="fractions of the epochs at which the rate is divided by 10 (default: 0.5 0.75)")
    p.add_argument("--seed", type=int)
    p.add_argument("--image-size", type=int, help="imagefolder: side of the crops (default: the images' own for "
                   "small images, 224 for others)")
    p.add_argument("--test-split", type=float, metavar="F", help="imagefolder without train/ and test/: the share "
                   "of each class held out as the test set, drawn with a fixed split seed, the same for every run "
                   "(default 0.2)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="mirror training images at random (default); --no-flip where a mirror image changes the class")
    p.add_argument("--train-subset", type=int, metavar="N", help="train on N images of the training set, "
                   "stratified by class and drawn with the seed (default: all); the test set stays whole")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision: bfloat16 on CPUs and on GPUs that compute in it (Ampere on), else "
                   "float16 with loss scaling")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda when available, else cpu)")
    p.add_argument("--threads", type=int, metavar="N", help="torch's CPU threads (default: OMP_NUM_THREADS, "
                   "else every core; ablate: 1 per run, so that its table is the same on every machine); recorded "
                   "with the run")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the model")
    p.add_argument("--compile-mode", choices=COMPILE_MODES, help="torch.compile's mode (turns --compile on): "
                   "reduce-overhead replays each step as CUDA graphs, for small models that wait on kernel launches")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="the model and its inputs in channels-last memory order (faster convolutions on tensor "
                   "cores under --amp)")
    p.add_argument("--workers", type=int, help="data-loading processes (default 0)")
    p.add_argument("--data-dir", metavar="DIR", help="where the data set lives (default: ./data)")
    p.add_argument("--download", action="store_true", default=None, help="fetch CIFAR into --data-dir")
    p.add_argument("--loader", choices=LOADERS, help="cache: small images (CIFAR's kind) decoded once into a tensor "
                   "file and augmented on the device (default for them); pil: every image read by PIL every epoch")
    p.add_argument("--on-bad-image", choices=ON_BAD_IMAGE, help="an unreadable image stops the run (default) "
                   "or is skipped")
    p.add_argument("--out", metavar="DIR", help="folder for checkpoint, logs and results")
    p.add_argument("--tensorboard", action="store_true", default=None, help="also write TensorBoard event files "
                   "in <out>/tensorboard (needs the tensorboard extra: pip install -e '.[tensorboard]')")
    p.add_argument("--tensorboard-every", type=int, metavar="N", help="--tensorboard: the mean training loss and "
                   "accuracy of every N steps (default 10)")
    p.add_argument("--quiet", action="store_true", default=None, help="no progress bars or per-epoch lines")


def from_args(args: argparse.Namespace, **overrides) -> tuple[Config, set[str]]:
    """The Config the flags ask for (with ``overrides``: ablate's model and solver of a
    row), its solver parsed once, and the names of the settings given explicitly."""
    values = {f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name, None) is not None}
    options = {}
    if getattr(args, "solver", None):
        values["solver"] = args.solver
    if args.noise:
        options["noise"] = args.noise
    if args.survival is not None:
        options["survival"] = args.survival
    options.update(parse_options(args.opt))
    if values.get("compile_mode", "default") != "default":
        values.setdefault("compile", True)
    if options:
        values["options"] = options
    values.update(overrides)
    cfg = Config(**values)
    given = set(values) - {"solver", "options"}
    return cfg, given | {name for name in ("solver", "options") if getattr(cfg, name)}
