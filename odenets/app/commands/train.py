"""The training loop, and ``odenets train``.

One epoch: SGD over the epoch's batches (the order drawn from (seed, epoch)), the test
set, a log line, the history as JSON lines and CSV, and a checkpoint. SIGINT/SIGTERM
make the loop finish its step, save and stop; a NaN or infinite loss stops it, naming
the step, without saving, so the last checkpoint stays good. A step's loss is read one
step late (:mod:`train_step`), so that the host never waits for the device mid-epoch.
"""
from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from torch import nn
from tqdm import tqdm

from odenets.files import remove_temporaries

from ..data import datasets as data
from ..data.description import Description
from ..data.identity import identity, mismatch
from ..errors import CheckpointError, Interrupted, NonFiniteLoss, StorageError, UsageError, why
from ..run import checkpoint, distributed, lock, metrics, models, optimizer, precision, seeding, signals, tensorboard
from ..run.distributed import Context
from ..run.durations import duration
from ..run.late_read import Reading
from ..run.plan_timer import PlanTimer
from ..run.train_step import TrainStep
from ..settings import config, recipe, settings_file
from ..settings.config import Config
from .evaluate import evaluate

SUBSET_STREAM = 2
"""The random stream that draws a ``--train-subset``: derive(seed, 0, 0, 2), the same on every process."""

OnStep = Callable[[nn.Module, int, int], None]
"""Called after every optimizer step with (model, epoch, step): a hook for tests and tools."""
Progress = Callable[[int, int], None]
"""Called after every optimizer step with (steps done, steps of the whole run): for displays."""


def fit(cfg: Config, state: Optional[dict] = None, on_step: Optional[OnStep] = None, lines: bool = True,
        progress: Optional[Progress] = None) -> dict:
    """Train ``cfg`` from scratch, or on from checkpoint ``state`` (see
    :func:`checkpoint.load`); return the result, also written to <out>/result.json.
    ``lines``: print a line per epoch (unless ``cfg.quiet``); ``progress``: told the steps
    done after each step (an ``ablate --jobs`` worker reports them to its study).

    The run holds its folder (:func:`lock.hold`) from start to end; a checkpoint of
    another folder is resumed into ``cfg.out`` only if that holds nothing yet, and
    is then copied there first, so the folder is a complete run of its own."""
    if cfg.tensorboard:
        tensorboard.require()  # before any data is read
    found = data.find(cfg.data, cfg.data_dir, cfg.test_split, cfg.on_bad_image)  # the one look at the data
    cfg = cfg.resolved(found.description).check()
    ctx = distributed.setup(cfg.device)
    with _holding(ctx, Path(cfg.out)), threads(cfg.threads) as used:
        return _Run(replace(cfg, threads=used), ctx, found, state, on_step, lines, progress).run()


@contextmanager
def threads(n: Optional[int]) -> Iterator[int]:
    """torch's CPU threads set to ``n`` (None: left as they are) while inside; yields the
    count in use, which the run records."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextmanager
def _holding(ctx: Context, out: Path) -> Iterator[None]:
    """The main process holds ``out``'s lock (and clears the temporary files of an
    interrupted write); the others stop with it if it cannot."""
    with ExitStack() as stack:
        error = None
        if ctx.main:
            try:
                stack.enter_context(lock.hold(out))
                remove_temporaries(out)
            except UsageError as e:
                error = e
        failed = distributed.all_sum(ctx, torch.tensor([float(error is not None)], device=ctx.device)).item()
        if error is not None:
            raise error
        if failed:
            raise UsageError(f"the main process could not take the run folder {out}")
        yield


class _Run:
    def __init__(self, cfg: Config, ctx: Context, found: data.Found, state: Optional[dict],
                 on_step: Optional[OnStep], lines: bool = True, progress: Optional[Progress] = None):
        self.cfg, self.ctx, self.on_step, self.lines = cfg, ctx, on_step, lines and not cfg.quiet
        self.progress = progress
        self.out = Path(cfg.out)
        self.path = self.out / "checkpoint.pt"
        if state is None and self.path.exists():
            raise UsageError(f"{self.path} already exists; pass --resume to continue that run, or choose another "
                             "--out")
        self.copy = state is not None and Path(state["path"]).resolve() != self.path.resolve()
        if self.copy:
            held = sorted(p.name for p in self.out.iterdir() if p.name != lock.NAME) if self.out.is_dir() else []
            if held:
                raise UsageError(f"cannot resume {state['path']} into {self.out}: that folder already holds "
                                 f"{', '.join(held[:5])}{', ...' if len(held) > 5 else ''}. Resume into the "
                                 f"run's own folder, or give an --out that is empty or new")
        if cfg.batch_size % ctx.world:
            raise UsageError(f"--batch-size {cfg.batch_size} must be a multiple of the {ctx.world} processes")
        self.per_process = cfg.batch_size // ctx.world
        self.board: Optional[tensorboard.Board] = None

        seeding.seed_everything(cfg.seed)
        with distributed.local_first(ctx):
            self.data = data.load(found, download=cfg.download, image_size=cfg.image_size, flip=cfg.flip,
                                  loader=cfg.loader)
        self.data_identity = identity(cfg.data, cfg.data_dir)
        if cfg.train_subset is not None:
            self.data = data.subset(self.data, cfg.train_subset, seeding.derive(cfg.seed, 0, 0, SUBSET_STREAM))
        self.model = model = models.build(cfg, self.data.num_classes, self.data.in_chans).to(
            ctx.device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format)
        sample = self.data.train[0][0].unsqueeze(0).to(ctx.device)
        self.parameters, self.evaluations = models.parameters(model), models.evaluations(model, sample)
        self.optimizer = optimizer.sgd(model, cfg)
        self.scaler = precision.scaler(ctx.device, cfg.amp)
        self.epoch, self.batch, self.step, self.history = 0, 0, 0, []
        self.partial = _fresh()
        self.saved: Optional[str] = None  # where and when the last good checkpoint was written
        if state is not None:
            self._restore(state)

        net = model
        if ctx.world > 1:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[ctx.device.index] if ctx.device.index is not None else None,
                find_unused_parameters=any(getattr(m, "drops_steps", False) for m in model.modules()))
        self.net = torch.compile(net, mode=cfg.compile_mode) if cfg.compile else net
        self.eval_net = torch.compile(model, mode=cfg.compile_mode) if cfg.compile else model
        self.train_step = TrainStep(self.net, self.optimizer, ctx, cfg.amp, cfg.channels_last, self.scaler)
        self.sampler = seeding.EpochSampler(len(self.data.train), cfg.seed, ctx.rank, ctx.world)
        self.loader_rng = torch.Generator()  # seeds the loader's workers, reseeded every epoch
        self.loader = self.data.train_batches(self.sampler, self.per_process, ctx.device,
                                              seeding.BatchSeeds(self.sampler, self.per_process),
                                              seeding.ItemSeeds(self.sampler), cfg.workers, self.loader_rng)
        self.tests = self.data.test_batches(self.per_process, ctx.device, ctx.rank, ctx.world, cfg.workers)
        self.bars = not cfg.quiet and ctx.main and sys.stderr.isatty()
        self.planned = False  # the plan line is printed in the first epoch this process trains

    # -- the run -------------------------------------------------------------------------

    def run(self) -> dict:
        cfg, ctx = self.cfg, self.ctx
        if ctx.main:
            with self._writing("config.json"):
                metrics.write_json(self.out / "config.json", {**cfg.record(), "data_chosen": self.data.chosen,
                                                              "data_set": self.data.description.record(),
                                                              "precision": precision.describe(ctx.device, cfg.amp)})
            if self.lines and self.data.chosen:
                print(describe(cfg, self.data.description), flush=True)
            if cfg.tensorboard:
                settings = {**cfg.record(), "data_set": self.data.description.record()}
                self.board = tensorboard.Board(self.out, settings, cfg.tensorboard_every)
        try:
            return self._epochs()
        finally:
            if self.board is not None:
                self.board.close()

    def _epochs(self) -> dict:
        cfg, ctx = self.cfg, self.ctx
        if self.copy:  # the resumed checkpoint into this folder, as its first: a complete run of its own
            self._save()
            if ctx.main:
                with self._writing("metrics"):
                    metrics.write(self.out, self.history)
        with signals.stop_requests(announce=ctx.main) as stop, \
                tqdm(total=cfg.epochs, initial=self.epoch, desc="epochs", unit="epoch", disable=not self.bars) as bar:
            while self.epoch < cfg.epochs:
                self._train_epoch(stop)
                self._end_epoch(bar)
                bar.update()
                if self._agree(stop.requested):
                    raise self._interrupted(stop)
        last = self.history[-1] if self.history else {}
        result = {"config": cfg.record(), "data_chosen": self.data.chosen, "data_set": self.data.description.record(),
                  "data_identity": self.data_identity,
                  "label": cfg.label,
                  "parameters": self.parameters, "evaluations": self.evaluations, "epochs": self.epoch,
                  "test_acc": last.get("test_acc"), "test_loss": last.get("test_loss"),
                  "seconds": sum(r["seconds"] for r in self.history), "history": self.history,
                  "checkpoint": str(self.path)}
        if ctx.main:
            with self._writing("result.json"):
                metrics.write_json(self.out / "result.json", result)
        distributed.barrier(ctx)
        return result

    def _train_epoch(self, stop: signals.Stop) -> None:
        cfg, ctx = self.cfg, self.ctx
        for group in self.optimizer.param_groups:  # an optimizer saved before base_lr existed had one rate
            group["lr"] = recipe.lr_at(group.get("base_lr", cfg.lr), self.epoch, cfg.epochs, tuple(cfg.milestones))
        if self.batch == 0:  # a fresh epoch; a part-done one had its random state restored
            seeding.seed_everything(seeding.derive(cfg.seed, self.epoch, ctx.rank))
        self.sampler.set_epoch(self.epoch, self.batch * self.per_process)
        self.loader_rng.manual_seed(seeding.derive(cfg.seed, self.epoch, ctx.rank, 1))
        started = time.perf_counter()
        report = self._plan if ctx.main and self.lines and not self.planned else None
        self.planned = True
        self.net.train()
        batches = tqdm(self.loader, desc=f"epoch {self.epoch + 1}", initial=self.batch, leave=False,
                       total=self.batch + len(self.loader), disable=not self.bars)
        with PlanTimer(report, len(self.loader)) as timer:
            for x, y in batches:
                reading = self.train_step(x, y, stop.requested, (self.epoch, self.step + 1, self.batch + 1))
                self.step, self.batch = self.step + 1, self.batch + 1
                stopping = self._tally(reading, batches)
                timer.tick()
                if self.on_step is not None:
                    self.on_step(self.model, self.epoch, self.step)
                if self.progress is not None:
                    self.progress(self.step, self.cfg.epochs * self.steps_per_epoch)
                if stopping if ctx.world > 1 else stop.requested:
                    self._tally(self.train_step.flush(), batches)
                    self.partial["seconds"] += time.perf_counter() - started
                    self._save()
                    raise self._interrupted(stop)
        self._tally(self.train_step.flush(), batches)
        self.partial["seconds"] += time.perf_counter() - started

    def _tally(self, reading: Optional[Reading], batches: tqdm) -> bool:
        """Add a step's reading (one step late, see :mod:`train_step`) to the epoch's sums;
        stop on a loss that is not finite, naming the step. Return whether any process
        asked to stop in that step."""
        if reading is None:
            return False
        loss, correct, count, stopping = reading.values()
        epoch, step, batch = reading.tag
        if not math.isfinite(loss):
            raise self._non_finite(f"the loss became {loss / count:.4g} at epoch {epoch + 1}, step {step} "
                                   f"(batch {batch} of the epoch)")
        for key, value in (("loss", loss), ("correct", correct), ("count", count)):
            self.partial[key] += value
        if self.board is not None:
            self.board.step(step, loss, correct, count)
        batches.set_postfix(loss=f"{self.partial['loss'] / self.partial['count']:.4f}", refresh=False)
        return stopping > 0

    def _end_epoch(self, bar: tqdm) -> None:
        cfg, ctx, p = self.cfg, self.ctx, self.partial
        started = time.perf_counter()
        distributed.broadcast_buffers(ctx, self.model)
        test_loss, test_acc = evaluate(self.eval_net, self.tests, ctx, cfg.amp)
        row = {"epoch": self.epoch + 1, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
               "train_loss": p["loss"] / max(p["count"], 1), "train_acc": p["correct"] / max(p["count"], 1),
               "test_loss": test_loss, "test_acc": test_acc, "seconds": p["seconds"] + time.perf_counter() - started,
               "train_seconds": p["seconds"]}
        ks = metrics.learned_k(self.model)
        if ks:
            row["k"] = ks
        self.history.append(row)
        self.epoch, self.batch, self.partial = self.epoch + 1, 0, _fresh()
        self._save()
        if ctx.main:
            with self._writing("metrics"):
                metrics.write(self.out, self.history)
            if self.board is not None:
                self.board.epoch(row)
            if self.lines:
                bar.write(f"{metrics.line(row, cfg.epochs)}  {self._left()}", file=sys.stdout)

    def _left(self) -> str:
        """The run's time left, by the clock: the mean time of its epochs so far, times the epochs left."""
        left = self.cfg.epochs - self.epoch
        if not left:
            return "done"
        mean = sum(r["seconds"] for r in self.history) / len(self.history)
        return f"{duration(mean * left)} left"

    @property
    def steps_per_epoch(self) -> int:
        """Each process's share of the training images, in batches."""
        return -(-(-(-len(self.data.train) // self.ctx.world)) // self.per_process)

    def _plan(self, per_step: float, basis: str, refined: bool) -> None:
        """Print the plan line (model, parameters, device and precision under --amp,
        images, steps, time per epoch and for the run), or its refinement. An epoch's
        time is its steps' and its test pass's, a test batch taken as a third of a
        training step (a forward pass of the three passes a step makes)."""
        steps, cfg = self.steps_per_epoch, self.cfg
        per_epoch = per_step * (steps + len(self.tests) / 3)
        run = per_epoch * (cfg.epochs - self.epoch) - per_step * self.batch
        times = (f"about {duration(per_epoch)} per epoch, {duration(run)} for the run's {cfg.epochs - self.epoch} "
                 f"epoch{'s' if cfg.epochs - self.epoch > 1 else ''}{' left' if self.epoch else ''} (from {basis})")
        if refined:
            tqdm.write(f"plan, refined: {times}", file=sys.stdout)
        else:
            amp = f", {precision.describe(self.ctx.device, True)}" if cfg.amp else ""
            world = f" x {self.ctx.world}" if self.ctx.world > 1 else ""
            tqdm.write(f"plan: {cfg.model} ({cfg.label}), {self.parameters:,} parameters, {self.ctx.device}{world}"
                       f"{amp}, {len(self.data.train):,} training images, {steps:,} steps per epoch, {times}",
                       file=sys.stdout)
        sys.stdout.flush()

    # -- checkpoints ------------------------------------------------------------------------

    def _save(self) -> None:
        if not torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all():  # one read
            raise self._non_finite(f"the weights became NaN or infinite by step {self.step} "
                                   f"(epoch {self.epoch + (self.batch > 0)})")
        rng = distributed.gather(self.ctx, seeding.rng_state())
        if self.ctx.main:
            with self._writing("checkpoint"):
                checkpoint.save(self.path, {
                    "config": self.cfg.record(), "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                    "epoch": self.epoch, "batch": self.batch, "step": self.step, "partial": dict(self.partial),
                    "history": self.history, "rng": rng, "world_size": self.ctx.world,
                    "num_classes": self.data.num_classes, "in_chans": self.data.in_chans,
                    "classes": list(self.data.classes), "split": self.data.description.split,
                    "data_identity": self.data_identity})
        self.saved = self._position(self.path)
        distributed.barrier(self.ctx)

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn a failed write (full disk, read-only file system) into a StorageError
        that says so and names the last good checkpoint."""
        try:
            yield
        except OSError as e:
            reason = why(e)
            last = f"the last good checkpoint, {self.saved}, is intact" if self.saved else "no checkpoint was written"
            raise StorageError(f"cannot write the {what} in {self.out}: {reason}; stopped: {last}") from None

    def _position(self, path) -> str:
        part = f", part-way through epoch {self.epoch + 1}" if self.batch else ""
        return f"{path} (after epoch {self.epoch}{part}, step {self.step})"

    def _restore(self, state: dict) -> None:
        path, saved, mine = state["path"], Config(**config.known(state["config"])).record(), self.cfg.record()
        for key in ("data", "model", "solver", "options"):
            if saved.get(key) != mine[key]:
                raise CheckpointError(f"{path} was trained with {key} {saved.get(key)!r}; this run has "
                                      f"{mine[key]!r}")
        checkpoint.check_classes(state, self.data.classes, f"the {self.cfg.data} data in {self.cfg.data_dir}")
        checkpoint.check_split(state, self.data.description.split, f"the {self.cfg.data} data in {self.cfg.data_dir}")
        other = mismatch(state.get("data_identity"), self.data_identity)
        if other:
            raise CheckpointError(f"{path} cannot go on with the {self.cfg.data} data in {self.cfg.data_dir}: {other}. "
                                  "Resume it on its own data, or start a new run in another --out")
        checkpoint.restore(self.model, state["model"], path, "model")
        saved_optimizer = state["optimizer"]
        if state.get("version") == 1:
            saved_optimizer = checkpoint.optimizer_from_version_1(saved_optimizer, state["model"], self.model,
                                                                  self.optimizer)
        checkpoint.restore(self.optimizer, saved_optimizer, path, "optimizer")
        if state["scaler"] and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self.history, self.partial = state["history"], {**_fresh(), **state["partial"]}
        if self.batch and (state["world_size"] != self.ctx.world or len(state["rng"]) != self.ctx.world):
            if self.ctx.main:
                print(f"odenets: {path} stopped part-way through epoch {self.epoch + 1} with "
                      f"{state['world_size']} processes; with {self.ctx.world} that epoch starts over",
                      file=sys.stderr)
            self.batch, self.partial = 0, _fresh()
            self.step = self.history[-1]["step"] if self.history else 0
        elif self.batch:
            seeding.set_rng_state(state["rng"][self.ctx.rank])
        self.saved = self._position(path)

    # -- stopping ------------------------------------------------------------------------

    def _agree(self, flag: bool) -> bool:
        """Whether any process has ``flag`` set (all processes must stop together)."""
        return bool(distributed.all_sum(self.ctx, torch.tensor([float(flag)], device=self.ctx.device)).item())

    def _interrupted(self, stop: signals.Stop) -> Interrupted:
        where = (f"part-way through epoch {self.epoch + 1}/{self.cfg.epochs} (step {self.step})" if self.batch
                 else f"after epoch {self.epoch}/{self.cfg.epochs} (step {self.step})")
        error = Interrupted(f"stopped by {stop.name or 'a signal'} {where}; the checkpoint is {self.path}",
                            stop.signum or 2)
        error.checkpoint = str(self.path)
        return error

    def _non_finite(self, what: str) -> NonFiniteLoss:
        last = f"the last good checkpoint is {self.saved}" if self.saved else "no checkpoint was written"
        return NonFiniteLoss(f"{what}; stopped without saving: {last}. {divergence(self.cfg)}")


def divergence(cfg: Config) -> str:
    """What to change after a NaN loss: the settings that make SGD diverge on their own
    (heavy-ball SGD on a quadratic is stable only for momentum m < 1 and
    lr * curvature < 2 (1 + m); weight decay adds weight_decay to every curvature), else
    the learning rate."""
    causes = []
    if cfg.momentum >= 1:
        causes.append(f"--momentum {cfg.momentum:g} is not below 1, so SGD's momentum grows without bound: use a "
                      "value below 1 (0.9 is usual).")
    if cfg.lr * cfg.weight_decay >= 2 * (1 + min(cfg.momentum, 1)):
        causes.append(f"--lr {cfg.lr:g} times --weight-decay {cfg.weight_decay:g} is at least 2 (1 + momentum), so "
                      "the weight decay alone makes the weights diverge: lower either.")
    return " ".join(causes) or "A smaller --lr may help."


def describe(cfg: Config, d: Description) -> str:
    """What the data decided for this run, in one line."""
    c = d.chosen
    height, width = c["image_size"]
    return (f"data: {cfg.data} in {cfg.data_dir}, {d.train_images:,} training images, {len(d.classes)} classes, "
            f"{c['channels']} channel{'s' if c['channels'] > 1 else ''} at {height}x{width}; test set: "
            f"{d.test_images:,} images, {d.test_set}; model {cfg.model}, {cfg.epochs} epochs of {cfg.batch_size}; "
            f"{c['augmentation']}; loader: {c['loader']}")


def _fresh() -> dict:
    return {"loss": 0.0, "correct": 0.0, "count": 0.0, "seconds": 0.0}


# -- the command -----------------------------------------------------------------------

def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train one network", description="Train a network from the zoo on a "
                              "data set, with a checkpoint and a log line every epoch.")
    config.add_arguments(p)
    settings_file.add_argument(p)
    p.add_argument("--resume", nargs="?", const="", metavar="CHECKPOINT",
                   help="continue from CHECKPOINT (a file or a run's folder; alone: the one in --out)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg, given = config.from_args(args)
    state = None
    if args.resume is not None:
        path = Path(args.resume or cfg.resolved().out)
        state = checkpoint.load(path / "checkpoint.pt" if path.is_dir() else path)
        cfg = cfg.resume(state["config"], given)
        cfg.out = args.out or str(Path(state["path"]).parent)
    try:
        result = fit(cfg, state)
    except Interrupted as e:
        raise Interrupted(f"{e}\nresume with:\n  {resume_command(getattr(args, 'argv', None), e.checkpoint)}",
                          e.exit_code - 128) from None
    if not cfg.quiet and int(os.environ.get("RANK", "0")) == 0:
        print(f"done: {result['epochs']} epochs, test accuracy {100 * result['test_acc']:.2f}%; results in "
              f"{Path(result['checkpoint']).parent}")
    return 0


def resume_command(argv: Optional[list[str]], path: str) -> str:
    """The command that continues this run: the same one, with ``--resume path``."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"the same torchrun command with --resume {shlex.quote(path)}"
    args, rest = [], list(argv if argv is not None else sys.argv[1:])
    while rest:
        a = rest.pop(0)
        if a == "--resume":
            if rest and not rest[0].startswith("-"):
                rest.pop(0)
        elif not a.startswith("--resume="):
            args.append(a)
    return command(args + ["--resume", path])


def command(argv: Optional[list[str]] = None) -> str:
    """The shell command running odenets with ``argv`` (default: this process's
    arguments), started as this process was: ``odenets ...`` or ``python -m odenets ...``."""
    program = ["odenets"] if Path(sys.argv[0]).name == "odenets" else [sys.executable, "-m", "odenets"]
    return shlex.join(program + list(argv if argv is not None else sys.argv[1:]))
