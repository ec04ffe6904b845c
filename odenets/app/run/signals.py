"""Ctrl-C and SIGTERM as a request to stop cleanly: finish the step, save, exit."""
from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional


class Stop:
    """Set by the first SIGINT/SIGTERM; the training loop polls it after each step."""

    def __init__(self):
        self.signum: Optional[int] = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@contextmanager
def stop_requests(announce: bool = True) -> Iterator[Stop]:
    """While inside, SIGINT and SIGTERM set the yielded :class:`Stop` instead of killing
    the process; a second signal, a second or more after the first, raises
    KeyboardInterrupt at once. (One within the second is the same request: Ctrl-C under
    torchrun reaches a worker both from the terminal and from the launcher.) Outside the
    main thread, where handlers cannot be installed, signals keep their usual effect."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    first = 0.0

    def handle(signum, frame):
        nonlocal first
        if stop.requested:
            if time.monotonic() - first >= 1.0:
                raise KeyboardInterrupt
            return
        stop.signum, first = signum, time.monotonic()
        if announce:
            print(f"\nodenets: {signal.Signals(signum).name} received: finishing the current step and saving a "
                  "checkpoint (send it again to stop at once)", file=sys.stderr, flush=True)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
