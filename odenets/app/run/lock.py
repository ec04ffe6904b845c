"""One writer per run folder: an exclusive lock file holding the writer's pid and host.

``with hold(folder):`` creates the folder if needed and the file ``folder/.lock``, and
refuses (a UsageError naming the folder and the other process) while another live
process holds it. The kernel holds the lock itself (``fcntl.flock`` on the open file),
so it ends with its process however that process ends, even by SIGKILL: a lock file
left behind by a dead process is stale and is taken over; the pid in it only serves to
name the holder (and ``os.kill(pid, 0)`` to tell whether it still runs). On a clean exit
the file is removed, and so is the folder if this lock created it and it stayed empty.
Holding a folder again inside ``hold`` in the same process is a no-op.
"""
from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

from ..errors import StorageError, UsageError

NAME = ".lock"
_held: set[Path] = set()  # folders this process holds


@contextmanager
def hold(folder: Union[str, os.PathLike]) -> Iterator[Path]:
    """Hold ``folder`` (created if missing) for this process; yield its path."""
    folder = Path(folder)
    key = folder.resolve()
    if key in _held:
        yield folder
        return
    created = make_folder(folder)
    fd = _acquire(folder / NAME, folder)
    _held.add(key)
    try:
        yield folder
    finally:
        _held.discard(key)
        try:
            (folder / NAME).unlink(missing_ok=True)  # while still holding it: no one else can own this file
        finally:
            os.close(fd)
        for made in created:  # only while empty: a run that failed before writing anything leaves no folder
            try:
                made.rmdir()
            except OSError:
                break


def make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` (and its parents); return the folders created, deepest first.
    A path that is a file, lies under a file or cannot be created is a UsageError
    saying which."""
    if folder.is_dir():
        return []
    if folder.exists():
        raise UsageError(f"--out {folder} is a file, not a folder; choose another --out")
    above = next((p for p in folder.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise UsageError(f"--out {folder} lies under {above}, which is a file; choose another --out")
    missing = [folder, *itertools.takewhile(lambda p: p != above, folder.parents)]
    try:
        folder.mkdir(parents=True)
    except FileExistsError:  # made by someone else meanwhile
        return []
    except OSError as e:
        raise StorageError(f"cannot create the folder --out {folder}: {e.strerror or e}") from None
    return missing


def _acquire(path: Path, folder: Path) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StorageError(f"cannot write in --out {folder}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(fd)
            os.close(fd)
            raise UsageError(f"{folder} is in use by {holder}: a run folder takes one writer at a time. Wait "
                             "for it to finish or stop it, or choose another --out") from None
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP):
                raise StorageError(f"cannot lock {path}: the file system of --out {folder} does not support "
                                   "locks; choose a local folder") from None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder before us removed the file after we opened it: lock the new one
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        return fd


def _describe(fd: int) -> str:
    """The holder named in the lock file: 'process 123 on host h'."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        pid, host = int(info["pid"]), str(info["host"])
    except (ValueError, KeyError, TypeError, OSError):
        return "another process"
    if host != socket.gethostname():
        return f"process {pid} on host {host}"
    return f"process {pid}" + ("" if alive(pid) else " (which has just ended; try again)")


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True
