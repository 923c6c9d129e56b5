"""The control socket's server side: decode a request, call the supervisor, encode a reply.

Runs in the supervisor process, inside its event loop (the REP socket is polled there;
this module never blocks). Requests and replies use the project's envelope
(:func:`protocol.encode_control` → :func:`protocol.encode_reply` / ``encode_error``).

Ops (``protocol.ControlOp``) and their fields::

    ps                              → [child row, ...]
    kill     name, signal="KILL"    → child row      (the signal goes to the child's pid)
    restart  name                   → child row
    stop     name                   → child row      (held: stays stopped, persisted)
    start    name                   → child row
    stats    name=None              → {name: {liveness report, rss, cpu}} (all or one)
    status                          → supervisor summary (pid, ready, failures)
    shutdown                        → {"stopping": true}  (graceful, in reverse order)

Errors: an unknown child is ``NotFound``; a bad field or signal is ``BadRequest``; nothing
a client sends can crash the supervisor.
"""

from __future__ import annotations

import signal
from typing import Any, Protocol

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest, RegistryError
from ecsm_actors.protocol import ControlOp


class Controlled(Protocol):
    """What the control socket needs from the supervisor."""

    def ps(self) -> list[dict[str, Any]]: ...
    def kill_child(self, name: str, signum: int) -> dict[str, Any]: ...
    def restart_child(self, name: str) -> dict[str, Any]: ...
    def stop_child(self, name: str) -> dict[str, Any]: ...
    def start_child(self, name: str) -> dict[str, Any]: ...
    def stats(self, name: str | None) -> dict[str, Any]: ...
    def status(self) -> dict[str, Any]: ...
    def shutdown(self) -> dict[str, Any]: ...


def parse_signal(value: Any) -> int:
    """``KILL``, ``SIGKILL``, ``kill`` or ``9`` → 9. Raises BadRequest."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    elif isinstance(value, str):
        text = value.strip().upper()
        text = text if text.startswith("SIG") else "SIG" + text
        try:
            return int(signal.Signals[text])
        except KeyError:
            raise BadRequest(f"unknown signal {value!r}") from None
    else:
        raise BadRequest(f"unknown signal {value!r}")
    try:
        return int(signal.Signals(number))
    except ValueError:
        raise BadRequest(f"unknown signal {value!r}") from None


def _name(fields: dict[str, Any], required: bool = True) -> str | None:
    name = fields.get("name")
    if name is None and not required:
        return None
    if not isinstance(name, str) or not name:
        raise BadRequest("field 'name' (a child name) is required")
    return name


def handle(frame: bytes, target: Controlled, epoch: str = "") -> bytes:
    """Answer one control request frame."""
    request_id = protocol.request_id_of(frame)
    try:
        request_id, op, fields = protocol.decode_control(frame)
        result = _dispatch(op, fields, target)
    except RegistryError as e:
        return protocol.encode_error(request_id, epoch, e)
    return protocol.encode_reply(request_id, epoch, result)


def _dispatch(op: ControlOp, fields: dict[str, Any], target: Controlled) -> Any:
    if op == ControlOp.PS:
        return target.ps()
    if op == ControlOp.KILL:
        return target.kill_child(str(_name(fields)), parse_signal(fields.get("signal", "KILL")))
    if op == ControlOp.RESTART:
        return target.restart_child(str(_name(fields)))
    if op == ControlOp.STOP:
        return target.stop_child(str(_name(fields)))
    if op == ControlOp.START:
        return target.start_child(str(_name(fields)))
    if op == ControlOp.STATS:
        return target.stats(_name(fields, required=False))
    if op == ControlOp.STATUS:
        return target.status()
    if op == ControlOp.SHUTDOWN:
        return target.shutdown()
    raise BadRequest(f"unsupported control op {op}")
