"""What a study's parallel jobs are doing, shown as they do it.

On a terminal, one progress bar per running job (its row and seed, steps done of the
run's total, rate, time left), the lines of started and finished runs printed above the
bars. Elsewhere (a log file, a batch system's output) a line each time a job completes
an epoch, with the time it has taken and the time it will still take.
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

from tqdm import tqdm

from .durations import duration


class JobProgress:
    """``start(key, label)`` as a job starts, ``update(key, done, total, epochs)`` as it
    reports its steps, ``end(key)`` as it ends; ``write`` prints a line without breaking
    the bars."""

    def __init__(self, file: Optional[TextIO] = None, bars: Optional[bool] = None):
        self.file = file or sys.stderr
        self.bars = self.file.isatty() if bars is None else bars
        self.jobs: dict[str, dict] = {}

    def start(self, key: str, label: str) -> None:
        taken = {job["position"] for job in self.jobs.values()}
        position = min(set(range(len(self.jobs) + 1)) - taken)
        self.jobs[key] = {"label": label, "position": position, "started": time.monotonic(), "bar": None}

    def update(self, key: str, done: int, total: int, epochs: int) -> None:
        job = self.jobs.get(key)
        if job is None or total < 1:
            return
        if self.bars:
            if job["bar"] is None:
                job["bar"] = tqdm(total=total, initial=done, desc=job["label"], unit="step",
                                  position=job["position"], leave=False, file=self.file, dynamic_ncols=True,
                                  mininterval=0)  # the workers report twice a second at most
            job["bar"].update(done - job["bar"].n)
            return
        now = time.monotonic()
        if "first" not in job:  # the rate leaves out the start-up; a resumed run's past epochs are not news
            job["first"], job["epoch"] = (now, done), (done - 1) * epochs // total
        first_time, first_done = job["first"]
        epoch = done * epochs // total
        if epoch > job["epoch"]:
            job["epoch"] = epoch
            rate = (done - first_done) / (now - first_time) if done > first_done and now > first_time else 0.0
            left = f", about {duration((total - done) / rate)} left" if done < total and rate else ""
            self.write(f"{job['label']}: epoch {epoch}/{epochs}, {duration(now - job['started'])}{left}")

    def end(self, key: str) -> None:
        job = self.jobs.pop(key, None)
        if job is not None and job["bar"] is not None:
            job["bar"].close()

    def close(self) -> None:
        """End every job still shown (a study stopped part-way)."""
        for key in list(self.jobs):
            self.end(key)

    def write(self, line: str, file: Optional[TextIO] = None) -> None:
        """Print ``line`` (to stdout by default) above the bars."""
        tqdm.write(line, file=file or sys.stdout)
        (file or sys.stdout).flush()
