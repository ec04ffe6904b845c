"""A study's runs spread out: over processes on this machine (``--jobs``) and over
machines that share a file system (``--shard``).

:func:`run` trains a list of runs on ``jobs`` processes at once, each started fresh with
'spawn' (no state shared, no CUDA forked): on a machine with several GPUs each takes its
own (cuda:<slot>); on a CPU each runs on the threads its settings name (a study gives each
run one, :func:`default_jobs` runs as many at once as there are cores). A SIGINT or
SIGTERM stops starting runs and is passed on to the running ones as SIGTERM, which
finish their step, save and stop; so does the end of the study's process, however it
ends (kill -9 included: :func:`_die_with_parent`). A run that fails or is killed stops
the others the same way. Each run holds its folder's lock, so two processes never
write one run. :func:`share` is a shard's
deterministic part of a study: run k of the plan goes to shard k % N + 1.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from typing import Callable, Optional, Sequence, TypeVar

from ..errors import AppError, Interrupted, RunFailed, UsageError
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
    AppError as it was raised; a process killed, or any other error, as a RunFailed
    naming the run, its exit status or error, and where the others stopped. A signal
    stops the study the same way and raises Interrupted."""
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
                        self._stop_all()
            finally:  # only on an error in this process, e.g. a second Ctrl-C: stop at once
                for _, process, _, _ in self.running.values():
                    process.kill()
                    process.join()
        if isinstance(self.error, RunFailed):
            others = f"the runs stopped with it: {'; '.join(self.saved)}" if self.saved else "no other run was stopped"
            raise RunFailed(f"{self.error}; {others}")
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
        process = self.context.Process(target=_work, args=(self.work, cfg, send),
                                       name=f"odenets-job{slot}")
        # started ignoring SIGINT (which outlives exec), so that a Ctrl-C while it imports does not end it
        # with a traceback; the study passes a stop on as SIGTERM, which ends it there
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
            code = process.exitcode
            killed = f" (killed by {signal.Signals(-code).name})" if code is not None and code < 0 else ""
            kind, value = "error", RunFailed(f"the process of run {cfg.out} ended with exit status {code}{killed} "
                                             "before it reported")
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
            self._stop_all()  # the others save and stop

    def _stop_all(self) -> None:
        """SIGTERM to every running job: one training saves and stops, one still starting ends."""
        for _, process, _, _ in self.running.values():
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM)


def _work(work: Work, cfg: Config, conn: Connection) -> None:
    """A worker process: one run, its result or its error sent back (nothing, once the
    study's process is gone)."""
    def send(message) -> None:
        try:
            conn.send(message)
        except OSError:  # the study's process is gone: its SIGTERM (_die_with_parent) stops this run
            pass

    try:
        _die_with_parent()
        for signum in (signal.SIGINT, signal.SIGTERM):  # until training takes them: unwind, letting go of the folder
            signal.signal(signum, signal.default_int_handler)
        last = 0.0

        def report(done: int, total: int) -> None:
            nonlocal last
            if done == total or time.monotonic() - last >= REPORT_EVERY:
                last = time.monotonic()
                send(("progress", (done, total)))

        send(("result", work(cfg, report)))
    except AppError as e:
        send(("error", e))
    except KeyboardInterrupt:
        send(("error", Interrupted(f"run {cfg.out} stopped before it could save")))
    except BaseException as e:
        send(("error", RunFailed(f"run {cfg.out} failed with {type(e).__name__}: {e}")))
    finally:
        conn.close()


PR_SET_PDEATHSIG = 1
"""Linux's prctl option: the signal this process gets when its parent ends (prctl(2))."""


def _die_with_parent() -> None:
    """Have this worker sent SIGTERM when the study's process ends, however it ends
    (kill -9 too), so that it saves and stops as on a Ctrl-C rather than running on and
    holding its run's folder: Linux's parent-death signal, elsewhere a thread that
    waits on the parent's sentinel (a pipe that closes when it ends)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0:
            if not parent.is_alive():  # it ended before the signal was asked for
                os.kill(os.getpid(), signal.SIGTERM)
            return
    threading.Thread(target=_watch, args=(parent.sentinel,), name="odenets-parent-watch", daemon=True).start()


def _watch(sentinel) -> None:
    wait([sentinel])
    os.kill(os.getpid(), signal.SIGTERM)
