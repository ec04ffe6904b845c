"""When the plan line is printed: within PLAN_SECONDS of the first step, however slow.

A step's time is measured by the clock over the first steps of a run: after the first
(which pays for warm-up and compilation) the next ones, PLAN_STEPS of them or as many
as the epoch has. Fast steps give the plan line from all of those. Slow ones give it
once EARLY seconds have passed, from the steps done so far (the first alone, warm-up
included, when it is all there is), and one more line follows, refined, once the
PLAN_STEPS steps are timed. A first step still running at PLAN_SECONDS - MARGIN gives
the line from a lower bound: at least the time it has taken so far.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

PLAN_STEPS = 5
PLAN_SECONDS = 30.0
EARLY = 15.0
MARGIN = 3.0

Report = Callable[[float, str, bool], None]
"""Called with (seconds per step, what they were timed from, whether it refines a line already printed)."""


class PlanTimer:
    """Times the steps ticked and calls ``report`` once or twice (see the module's text);
    ``steps``: the epoch's number of steps. Close it (a context manager) when the epoch
    ends or stops, which stops its watch on a slow first step."""

    def __init__(self, report: Optional[Report], steps: int):
        self.report, self.last = report, min(steps, PLAN_STEPS + 1)
        self.count, self.printed, self.lock = 0, 0, threading.Lock()
        self.started = self.first = self.latest = time.perf_counter()
        self.watch = None
        if report is not None:
            self.watch = threading.Timer(PLAN_SECONDS - MARGIN, self._watch)
            self.watch.daemon = True
            self.watch.start()

    def __enter__(self) -> "PlanTimer":
        return self

    def __exit__(self, *_) -> None:
        if self.watch is not None:
            self.watch.cancel()

    def tick(self) -> None:
        """One step done."""
        if self.report is None or self.count >= self.last:
            return
        with self.lock:
            self.count += 1
            self.latest = time.perf_counter()
            if self.count == 1:
                self.first = self.latest
            if self.count == self.last or (not self.printed and self.latest - self.started >= EARLY):
                self._say()

    def _watch(self) -> None:
        with self.lock:
            if not self.printed and self.count < self.last:
                self._say()

    def _say(self) -> None:
        if self.count == 0:
            per_step, basis = time.perf_counter() - self.started, "the first step, still running: at least this"
        elif self.count == 1:
            per_step, basis = self.first - self.started, "the first step, warm-up included"
        else:
            timed = self.count - 1
            per_step, basis = (self.latest - self.first) / timed, f"{timed} timed step{'s' if timed > 1 else ''}"
        self.report(per_step, basis, self.printed > 0)
        self.printed += 1
