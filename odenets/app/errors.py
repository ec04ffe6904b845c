"""The errors the command line reports as a message and an exit status, not a traceback."""
from __future__ import annotations

import re


class AppError(Exception):
    """A failure the user can act on; ``exit_code`` is the process's exit status."""

    exit_code = 1

    def __init__(self, message: str):
        # An error raised in a DataLoader worker comes back re-raised as type(message)
        # with the worker's traceback prepended: keep only the original message.
        if message.startswith("Caught "):
            found = re.findall(rf"^\S*{type(self).__name__}: (.*)", message, flags=re.M | re.S)
            message = found[-1].rstrip() if found else message
        super().__init__(message)


class UsageError(AppError):
    """Bad input: an unknown name, a bad option, a missing folder (exit status 2)."""

    exit_code = 2


class DataError(UsageError):
    """A data set that is missing or holds an unreadable file."""


class CheckpointError(UsageError):
    """A checkpoint that is corrupt, foreign, or from a different run."""


class NonFiniteLoss(AppError):
    """The loss or the weights became NaN or infinite."""


class Interrupted(AppError):
    """SIGINT/SIGTERM: the run saved a checkpoint and stopped (exit status 128 + signal)."""

    def __init__(self, message: str, signum: int = 2):
        super().__init__(message)
        self.exit_code = 128 + signum
