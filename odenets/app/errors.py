"""The errors the command line reports as a message and an exit status, not a traceback."""
from __future__ import annotations

import errno
import json
import sys

_BEGIN, _END = "\x02odenets:", "\x03"
"""Around the message of an error raised in a DataLoader worker (see AppError.__str__)."""


class AppError(Exception):
    """A failure the user can act on; ``exit_code`` is the process's exit status.

    An error raised in a DataLoader worker reaches the main process as a new error of
    the same type made from the text of the worker's traceback. So that the message
    survives that trip unchanged, whatever the wrapping text, it travels between our
    own markers (written by ``__str__`` in a worker) and is taken back out of them."""

    exit_code = 1

    def __init__(self, message: str):
        begin = message.rfind(_BEGIN)
        end = message.find(_END, begin)
        if begin >= 0 and end > begin:
            message = json.loads(message[begin + len(_BEGIN):end])
        super().__init__(message)

    def __str__(self) -> str:
        message = super().__str__()
        data = sys.modules.get("torch.utils.data")
        if data is not None and data.get_worker_info() is not None:
            return f"{_BEGIN}{json.dumps(message)}{_END}"
        return message


class UsageError(AppError):
    """Bad input: an unknown name, a bad option, a missing folder (exit status 2)."""

    exit_code = 2


class DataError(UsageError):
    """A data set that is missing or holds an unreadable file."""


class CheckpointError(UsageError):
    """A checkpoint that is corrupt, foreign, or from a different run."""


class StorageError(UsageError):
    """A run folder that cannot be created or written: a read-only or full file system."""


class NonFiniteLoss(AppError):
    """The loss or the weights became NaN or infinite."""


class RunFailed(AppError):
    """A run of a study ended without its result: its process was killed, or it failed
    with an error of no kind above."""


class Interrupted(AppError):
    """SIGINT/SIGTERM: the run saved a checkpoint and stopped (exit status 128 + signal)."""

    def __init__(self, message: str, signum: int = 2):
        super().__init__(message)
        self.exit_code = 128 + signum


def why(error: OSError) -> str:
    """What an OSError of a write means, in words: "the disk is full" (or the quota is
    used up), else the system's own text."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    return error.strerror or str(error)
