"""Files and folders only their owner can read: PhotoDB's normalized photos, face crops, logs and
server files show people, so what PhotoDB makes under PHOTODB_HOME and IMG_PATH is 0700 (folders)
and 0600 (files) whatever the umask, and a folder of PhotoDB's own left wider by an older version is
tightened when PhotoDB opens it."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path, own: bool = True) -> Path:
    """Make `path` and its missing parents 0700. `own`: the folder is PhotoDB's alone (not a folder
    such as LOG_FILE's that other programs share), so an existing one is tightened too."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=DIR_MODE)
        _tighten(folder, DIR_MODE)
    if own:
        _tighten(path, DIR_MODE)
    return path


def touch_private(path: Path) -> Path:
    """Create `path` empty as 0600 (an existing file is kept and tightened), before a library such as
    logging or fasteners opens it with its own, wider mode."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    _tighten(path, FILE_MODE)
    return path


def write_private(target: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write `target` as 0600 through a temporary file in its folder, then rename: a reader never sees
    half a file, a crash never leaves one under the final name."""
    private_dir(target.parent)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:  # mkstemp makes it 0600 whatever the umask
            write(out)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


def _tighten(path: Path, mode: int) -> None:
    """Drop group and other bits of a path this user owns (another user's is left as it is)."""
    info = path.stat()
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != mode:
        path.chmod(mode)
