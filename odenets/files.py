"""Files written atomically: a temporary file beside the target, then a rename, so a
reader or a crash sees the old file or the new one, never half of one."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Callable, Union


def atomic_write(path: Union[str, os.PathLike], write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temporary file beside ``path`` (opened with ``mode``,
    'wb' or 'w'), then rename it over ``path``; parent folders are created."""
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
        tmp.unlink(missing_ok=True)
        raise
    return path
