"""Files replaced atomically: the one way this project rewrites a state or config file;
and a directory's entries flushed (:func:`fsync_dir`).

Used wherever a file is rewritten in place (the CLI's contexts and watch positions, the
registry's authorized keys, the supervisor's held children, the link agent's info file,
the simulator's state): the new content goes to a temporary file beside the target
(created 0600 or the given mode, never following a link), is flushed to disk, then
renamed over the target, so a reader or a crash sees the old file or the new one, never
half of one. Errors are the caller's ``OSError``; the temporary file never stays behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def replace_atomically(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600,
                       sync_dir: bool = False) -> None:
    """Replace ``path`` with ``data`` (see module docstring). ``sync_dir``: also flush the
    directory entry, so the rename itself survives a power loss."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(target.parent)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush the directory ``path``'s entries to disk, so a file created or renamed in it
    survives a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
