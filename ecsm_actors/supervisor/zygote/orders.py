"""The zygote's messages: a fork order, its reply, and which argvs can be forked.

Used by both ends (the supervisor and the zygote process); stdlib only, so the zygote's
preload stays what it chooses. An order is one JSON datagram ``{"argv": [...], "env":
{...}}`` sent with exactly one file descriptor (the child's log, opened by the supervisor)
as ``SCM_RIGHTS``; the reply is ``{"pid": N}`` or ``{"error": "..."}``. The zygote's first
datagram is ``{"ready": PID}``.

An argv can be forked when it is what the zygote's own interpreter would run:
``<this python> -m MODULE ARGS...`` or ``<this python> SCRIPT.py ARGS...`` (no interpreter
options: those would change the interpreter itself).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Largest datagram either end accepts (an order carries the child's environment).
MAX_MESSAGE = 256 << 10
#: Environment variable naming the zygote's end of the socket pair.
FD_ENV = "ECSM_ACTORS_ZYGOTE_FD"


@dataclass(frozen=True, kw_only=True)
class Order:
    argv: tuple[str, ...]
    env: Mapping[str, str]


def forkable(argv: Sequence[str], executable: str = sys.executable) -> bool:
    """Can the zygote (running ``executable``) become ``argv``?"""
    if len(argv) < 2 or argv[0] != executable:
        return False
    if argv[1] == "-m":
        return len(argv) >= 3 and bool(argv[2]) and not argv[2].startswith("-")
    return argv[1].endswith(".py") and not argv[1].startswith("-")


def encode_order(argv: Sequence[str], env: Mapping[str, str]) -> bytes:
    return json.dumps({"argv": list(argv), "env": dict(env)}).encode()


def decode_order(data: bytes) -> Order:
    """Raises ValueError on anything but a well-formed order."""
    doc = _object(data)
    argv, env = doc.get("argv"), doc.get("env")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError("order: argv must be a list of strings")
    if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ValueError("order: env must map strings to strings")
    if not forkable(argv):
        raise ValueError(f"order: cannot fork {argv[:3]!r}")
    return Order(argv=tuple(argv), env=env)


def encode_reply(*, pid: int | None = None, error: str | None = None) -> bytes:
    return json.dumps({"pid": pid} if error is None else {"error": error}).encode()


def decode_reply(data: bytes) -> int:
    """The forked pid; raises ValueError with the zygote's error otherwise."""
    doc = _object(data)
    pid = doc.get("pid")
    if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
        return pid
    raise ValueError(str(doc.get("error") or f"unexpected reply {doc!r}"))


def ready_message(pid: int) -> bytes:
    return json.dumps({"ready": pid}).encode()


def is_ready_message(data: bytes, pid: int) -> bool:
    try:
        return _object(data).get("ready") == pid
    except ValueError:
        return False


def _object(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc
