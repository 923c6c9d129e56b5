"""VSOA passwords kept in files: ``spec.template.vsoa.passwordFile``.

Runs inside the service-controller process, on the reconcile worker threads; the only
module that reads a secret file. Owns :func:`read_password_file` (the checks, then the
read), :func:`password_from_file` and :func:`with_password` (the spec the ECSM request is
built from).

The file is read on every pass that builds or checks the service (a stat and at most
4 KiB), and refused — a :class:`~ecsm_actors.errors.TerminalError` with reason
``SecretFileRefused`` and one line naming the path and the fault, which the runtime logs
and records as ``Degraded`` — when it is missing, is not a regular file, is not owned by
the operator's user, is readable or writable by group or others (``mode & 0o077``), is
larger than :data:`MAX_BYTES`, is not UTF-8, is empty, or holds a password longer than
the inline field allows. One trailing newline (``\n`` or ``\r\n``) is not part of the
password (``echo pw > file`` works). A refused service is left as it runs on ECSM; it is looked at
again when the object changes or at the informer's resync (``controller.resync_period``).

The content never leaves this process except in the request to ECSM: not in the registry,
the annotations, a condition or a log line. Its SHA-256 is part of the revision hash
(:func:`ecsm_actors.api.template_hash` with ``secret=``), so writing a new password into the
file rolls out a new revision at the service's next pass (within ``service.drift_interval``),
exactly as changing an inline password does; write it atomically (a new file renamed over
the old one) so a pass never reads half of it.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from ecsm_actors.api import limits
from ecsm_actors.api.echo import clip
from ecsm_actors.api.secrets import password_file_of
from ecsm_actors.errors import TerminalError

Json = dict[str, Any]

#: Largest secret file read, bytes.
MAX_BYTES = 4096
REASON = "SecretFileRefused"
FIELD = "spec.template.vsoa.passwordFile"


def _refused(path: str, why: str) -> TerminalError:
    return TerminalError(f"{FIELD} {clip(path, 200)}: {why}", reason=REASON)


def read_password_file(path: str, *, uid: int | None = None,
                       max_bytes: int = MAX_BYTES) -> str:
    """The password in ``path``, after checking the file (see the module docstring).
    ``uid`` is the owner required (default: this process's effective uid)."""
    owner = os.geteuid() if uid is None else uid
    try:  # O_NONBLOCK: a FIFO must not hang the worker; fstat then refuses it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError as e:
        raise _refused(path, "no such file") from e
    except PermissionError as e:
        raise _refused(path, "permission denied to the operator's user") from e
    except OSError as e:
        raise _refused(path, f"cannot be opened ({e.strerror or e})") from e
    try:
        info = os.fstat(fd)  # of what was opened: no race with a rename or a symlink swap
        if not stat.S_ISREG(info.st_mode):
            raise _refused(path, "not a regular file")
        if info.st_uid != owner:
            raise _refused(path, f"owned by uid {info.st_uid}, not by the operator's user "
                                 f"(uid {owner}): chown it")
        if info.st_mode & 0o077:
            raise _refused(path, f"mode {stat.S_IMODE(info.st_mode):04o} lets group or others "
                                 f"access it: chmod 600 it")
        if info.st_size > max_bytes:
            raise _refused(path, f"larger than {max_bytes} bytes")
        data = os.read(fd, max_bytes + 1)
    except OSError as e:
        raise _refused(path, f"cannot be read ({e.strerror or e})") from e
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise _refused(path, f"larger than {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _refused(path, "not UTF-8 text") from e
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise _refused(path, "empty")
    if len(text) > limits.MAX_PASSWORD:
        raise _refused(path, f"the password is longer than {limits.MAX_PASSWORD} characters")
    return text


def password_from_file(spec: Json) -> str | None:
    """The password of the spec's ``passwordFile`` (None when the template has none)."""
    template = spec.get("template")
    path = password_file_of(template if isinstance(template, dict) else None)
    return None if path is None else read_password_file(path)


def with_password(spec: Json, password: str | None) -> Json:
    """``spec`` with the password read from its file put inline (and the path dropped), as
    the ECSM request needs it; ``spec`` itself when there is no such password."""
    template = spec.get("template")
    if password is None or not isinstance(template, dict):
        return spec
    vsoa = {k: v for k, v in (template.get("vsoa") or {}).items() if k != "passwordFile"}
    return {**spec, "template": {**template, "vsoa": {**vsoa, "password": password}}}
