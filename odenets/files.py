"""Files written atomically: a temporary file beside the target, then a rename, so a
reader or a crash sees the old file or the new one, never half of one."""
from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

_TEMPORARY = re.compile(r"\..+\.(\d+)\.[0-9a-f]{8}\.tmp")
"""The name of :func:`atomic_write`'s temporary file: .<name>.<pid>.<8 hex digits>.tmp"""


def atomic_write(path: Union[str, os.PathLike], write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temporary file beside ``path`` (opened with ``mode``,
    'wb' or 'w'), then rename it over ``path``; parent folders are created. If anything
    fails, the temporary file is removed and the first error is raised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, mode.replace("w", "x")) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # e.g. a read-only file system: the error that matters is the first
            pass
        raise
    return path


def remove_temporaries(folder: Union[str, os.PathLike], abandoned: bool = False) -> list[Path]:
    """Remove the temporary files that interrupted :func:`atomic_write` calls (a killed
    process) left in ``folder``; return them. Call it only while no other process
    writes there (e.g. holding the folder's lock), or with ``abandoned``: then only the
    files whose writer is not running on this machine and that have not changed for
    IDLE seconds (a writer elsewhere, on a shared file system, keeps its file changing)."""
    folder = Path(folder)
    found = [p for p in folder.iterdir() if _TEMPORARY.fullmatch(p.name) and p.is_file()] if folder.is_dir() else []
    if abandoned:
        found = [p for p in found if _abandoned(p)]
    for p in found:
        p.unlink(missing_ok=True)
    return found


def unwritable(path: Union[str, os.PathLike]) -> Optional[str]:
    """Why :func:`atomic_write` could not write ``path`` (the system's reason), or None
    when it can: checked by making its folder where missing and creating and removing a
    temporary file there, so that work whose result goes there is not done for nothing."""
    path = Path(path)
    if path.is_dir():
        return "it is a folder"
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        return f"{above} is a file, not a folder"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        probe.open("x").close()
        probe.unlink()
    except OSError as e:
        return e.strerror or str(e)
    return None


IDLE = 60.0
"""Seconds without a change after which a temporary file of a process gone is abandoned."""


def _abandoned(path: Path) -> bool:
    pid = int(_TEMPORARY.fullmatch(path.name).group(1))
    try:
        os.kill(pid, 0)
        return False  # its writer is running
    except ProcessLookupError:
        pass
    except PermissionError:  # another user's process
        return False
    try:
        return time.time() - path.stat().st_mtime > IDLE
    except OSError:
        return False
