"""A study's runs spread out: over processes on this machine (``--jobs``) and over
machines that share a file system (``--shard``).

:func:`run` trains a list of runs on ``jobs`` processes at once, each started fresh with
'spawn' (no state shared, no CUDA forked): on a machine with several GPUs each takes its
own (cuda:<slot>); on a CPU each runs on the threads its settings name (a study gives each
run one, :func:`default_jobs` runs as many at once as there are cores). A SIGINT or SIGTERM stops starting runs and is
passed on to the running ones, which finish their step, save and stop; each run holds
its folder's lock, so two processes never write one run. :func:`share` is a shard's
deterministic part of a study: run k of the plan goes to shard k % N + 1.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from collections import deque
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from typing import Callable, Optional, Sequence, TypeVar

from ..errors import AppError, Interrupted, UsageError
from ..settings.config import Config
from . import signals

T = TypeVar("T")
Work = Callable[[Config, Optional[Callable[[int, int], None]]], T]
"""One run, ``work(cfg, progress)``: a module-level function (the worker process imports it
by name), which tells ``progress`` (when given) its steps done and in all as it goes."""
Progress = Callable[[Config, int, int], None]
"""Told, in the study's process, (cfg, steps done, steps in all) of a running job."""

REPORT_EVERY = 0.5
"""Seconds between a worker's progress reports (its last step is always reported)."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N), with 1 <= I <= N; anything else is a UsageError saying what is allowed."""
    i, sep, n = text.partition("/")
    try:
        shard = int(i), int(n)
    except ValueError:
        shard = None
    if not sep or shard is None or not 1 <= shard[0] <= shard[1]:
        raise UsageError(f"--shard takes I/N, this command's share I of N shards with 1 <= I <= N (e.g. 2/8), "
                         f"got {text!r}")
    return shard


def share(items: Sequence[T], shard: tuple[int, int]) -> list[T]:
    """Shard (I, N)'s part of ``items``: every item k with k % N == I - 1, in order."""
    i, n = shard
    return list(items[i - 1::n])


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_jobs(device: Optional[str]) -> int:
    """How many runs a study trains at once unless told: one per GPU where the runs go to
    GPUs (``device`` None or cuda) and there are several, else one per CPU core."""
    if device in (None, "cuda"):
        import torch

        if torch.cuda.device_count() >= 1:
            return torch.cuda.device_count()
    if device is not None and device.startswith("cuda"):
        return 1
    return cores()


def placed(cfg: Config, slot: int) -> Config:
    """``cfg`` as job ``slot`` runs it: on GPU ``slot`` (modulo their number) when the
    machine has several and no --device names one; quiet, as progress bars of several
    processes would overwrite each other. Its CPU threads are its settings' own."""
    device = cfg.device
    if cfg.device in (None, "cuda"):
        import torch

        gpus = torch.cuda.device_count()
        if gpus > 1:
            device = f"cuda:{slot % gpus}"
    return replace(cfg, device=device, quiet=True)


def run(work: Work, cfgs: Sequence[Config], jobs: int = 1,
        started: Optional[Callable[[Config], None]] = None,
        finished: Optional[Callable[[Config, T], None]] = None,
        progress: Optional[Progress] = None) -> list[T]:
    """``work(cfg, ...)`` for every cfg, ``jobs`` at a time (1: one after another in this
    process, which shows its own progress); the results in the order of ``cfgs``.
    ``started``, ``progress`` and ``finished`` are called in this process as each run
    starts (with the cfg as placed), advances and ends.

    The first run that fails stops the others (they save) and its error is raised: an
    AppError as it was raised, any other error as a RuntimeError with the worker's
    traceback. A signal stops the study the same way and raises Interrupted."""
    if jobs == 1:
        results = []
        for cfg in cfgs:
            started and started(cfg)
            results.append(work(cfg, None))
            finished and finished(cfg, results[-1])
        return results
    return _Pool(work, jobs, started, finished, progress).run(cfgs)


class _Pool:
    def __init__(self, work: Work, jobs: int, started, finished, progress):
        self.work, self.jobs, self.started, self.finished, self.progress = work, jobs, started, finished, progress
        self.context = multiprocessing.get_context("spawn")
        self.running: dict[Connection, tuple[int, multiprocessing.process.BaseProcess, int, Config]] = {}
        self.results: dict[int, object] = {}
        self.error: Optional[BaseException] = None
        self.saved: list[str] = []  # where the runs stopped part-way are
        self.stop = signals.Stop()
        self.stopped = self.context.Event()  # tells a job still starting that the study is stopping

    def run(self, cfgs: Sequence[Config]) -> list:
        waiting = deque(enumerate(cfgs))
        with signals.stop_requests(announce=False) as self.stop:
            passed_on = False
            try:
                while self.running or (waiting and not self._stopping()):
                    while waiting and len(self.running) < self.jobs and not self._stopping():
                        self._start(*waiting.popleft())
                    for conn in wait(list(self.running), timeout=0.5):
                        self._receive(conn)
                    if self.stop.requested and not passed_on:  # Ctrl-C reached them too: one request
                        passed_on = True
                        self._signal(self.stop.signum)
            finally:  # only on an error in this process, e.g. a second Ctrl-C: stop at once
                for _, process, _, _ in self.running.values():
                    process.kill()
                    process.join()
        if self.error is not None:
            raise self.error
        if self.saved or waiting:
            raise Interrupted(f"stopped by {self.stop.name}: " + (f"{len(self.saved)} running run(s) stopped "
                              f"({'; '.join(self.saved)}), " if self.saved else "") +
                              f"{len(waiting)} not started", self.stop.signum)
        return [self.results[i] for i in range(len(cfgs))]

    def _stopping(self) -> bool:
        return self.stop.requested or self.error is not None

    def _start(self, index: int, cfg: Config) -> None:
        slot = min(set(range(self.jobs)) - {s for _, _, s, _ in self.running.values()})
        cfg = placed(cfg, slot)
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(target=_work, args=(self.work, cfg, send, self.stopped),
                                       name=f"odenets-job{slot}")
        # started ignoring SIGINT (which outlives exec), so that a Ctrl-C while it imports does not end it
        # with a traceback; _work takes SIGINT back and then looks whether the study was stopped meanwhile
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            process.start()
        finally:
            signal.signal(signal.SIGINT, handler)
        send.close()
        self.running[receive] = (index, process, slot, cfg)
        if self.started:
            self.started(cfg)

    def _receive(self, conn: Connection) -> None:
        """A job's message: its progress, or how it ended."""
        index, process, _, cfg = self.running[conn]
        try:
            kind, value = conn.recv()
        except EOFError:  # it died before it could send: killed, or stopped as it was starting
            process.join()  # for its exit status
            kind, value = "error", RuntimeError(f"the process of run {cfg.out} ended with exit status "
                                                f"{process.exitcode} before it reported")
            if self._stopping():
                value = Interrupted(f"run {cfg.out} stopped as it started")
        if kind == "progress":
            if self.progress:
                self.progress(cfg, *value)
            return
        del self.running[conn]
        conn.close()
        process.join()
        if kind == "result":
            self.results[index] = value
            if self.finished:
                self.finished(cfg, value)
        elif isinstance(value, Interrupted) and self._stopping():
            checkpoint = getattr(value, "checkpoint", None)
            self.saved.append(f"saved in {checkpoint}" if checkpoint else f"{cfg.out} before its first checkpoint")
        elif self.error is None:  # a failure, or a run stopped on its own: the study cannot finish
            self.error = value
            self._signal(signal.SIGTERM)  # the others save and stop

    def _signal(self, signum: int) -> None:
        self.stopped.set()
        for _, process, _, _ in self.running.values():
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signum)


def _work(work: Work, cfg: Config, conn: Connection, stopped) -> None:
    """A worker process: one run, its result or its error sent back."""
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if stopped.is_set():
            raise KeyboardInterrupt
        last = 0.0

        def report(done: int, total: int) -> None:
            nonlocal last
            if done == total or time.monotonic() - last >= REPORT_EVERY:
                last = time.monotonic()
                conn.send(("progress", (done, total)))

        conn.send(("result", work(cfg, report)))
    except AppError as e:
        conn.send(("error", e))
    except KeyboardInterrupt:
        conn.send(("error", Interrupted(f"run {cfg.out} stopped before it could save")))
    except BaseException:
        conn.send(("error", RuntimeError(f"run {cfg.out} failed in its process:\n{traceback.format_exc()}")))
    finally:
        conn.close()
