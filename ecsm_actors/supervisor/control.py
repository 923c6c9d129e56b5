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

Every request gets exactly one reply, whatever it contains — a REP socket that is not
answered takes no further request, so one unanswered frame would make the supervisor
deaf. An unknown child is ``NotFound``; a malformed message (several frames, bad msgpack,
a bad field or signal) is ``BadRequest``; a verb that fails unexpectedly (a disk error
persisting the held children, a result that cannot be encoded) is ``Internal``. This is
the control path's catch-all (:func:`handle_message`); failures are counted and logged
rate-limited (:mod:`.failures`). Replies quote peer input only through
``describe_input`` and messages are bounded (``errors.MAX_MESSAGE``), so a reply stays
small whatever the request.
"""

from __future__ import annotations

import logging
import signal
from typing import Any, Protocol

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest, Internal, RegistryError, describe_input
from ecsm_actors.protocol import ControlOp, describe_error
from ecsm_actors.failures import FailureLog

logger = logging.getLogger(__name__)

#: A request id longer than this (characters) is not echoed in an error reply.
MAX_ECHOED_ID = 256
#: Longest child name a request may carry (names in a child table are short words).
MAX_NAME = 256

_default_failures = FailureLog(logger)


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
    elif isinstance(value, str) and len(value) <= 32:
        text = value.strip()
        if text.isascii() and text.isdigit():  # not "³" or "٩": int() refuses those
            number = int(text)
        else:
            name = text.upper() if text.upper().startswith("SIG") else "SIG" + text.upper()
            try:
                return int(signal.Signals[name])
            except KeyError:
                raise BadRequest(f"unknown signal {describe_input(value)}") from None
    else:
        raise BadRequest(f"unknown signal {describe_input(value)}")
    try:
        return int(signal.Signals(number))
    except ValueError:
        raise BadRequest(f"unknown signal {describe_input(value)}") from None


def _name(fields: dict[str, Any], required: bool = True) -> str | None:
    name = fields.get("name")
    if name is None and not required:
        return None
    if not isinstance(name, str) or not name:
        raise BadRequest("field 'name' (a child name) is required")
    if len(name) > MAX_NAME:
        raise BadRequest(f"field 'name' is not a child name ({describe_input(name)})")
    return name


def handle_message(frame: bytes, frames: int, target: Controlled, epoch: str = "", *,
                   failures: FailureLog | None = None) -> bytes:
    """The one reply to a message received on the REP socket: its first frame and its
    number of frames. Never raises: a request is one frame, more is a BadRequest."""
    if frames != 1:
        error = BadRequest(f"a control request is one frame, got {frames}")
        (failures or _default_failures).record("badRequests", "bad control request", error)
        return _refusal(None, epoch, error)
    return handle(frame, target, epoch, failures=failures)


def handle(frame: bytes, target: Controlled, epoch: str = "", *,
           failures: FailureLog | None = None) -> bytes:
    """Answer one control request frame. Never raises (see the module docstring)."""
    failures = failures or _default_failures
    try:
        request_id, op, fields = protocol.decode_control(frame)
    except Exception as e:  # noqa: BLE001 - the control path's catch-all: always answer
        refusal = e if isinstance(e, BadRequest) else BadRequest(
            f"malformed control request: {describe_error(e)}")
        failures.record("badRequests", "bad control request", refusal)
        return _refusal(_request_id_of(frame), epoch, refusal)
    try:
        return protocol.encode_reply(request_id, epoch, _dispatch(op, fields, target))
    except RegistryError as e:
        if isinstance(e, BadRequest):
            failures.record("badRequests", f"bad control request ({op})", e)
        return _refusal(request_id, epoch, e)
    except Exception as e:  # noqa: BLE001 - the control path's catch-all: always answer
        failures.record("internalErrors", f"internal error serving control op {op}", e)
        return _refusal(request_id, epoch,
                        Internal(f"{op} failed: {type(e).__name__}: {describe_error(e)}"))


def _request_id_of(frame: bytes) -> int | str | None:
    try:
        request_id = protocol.request_id_of(frame)
    except Exception:  # noqa: BLE001 - best effort: an error reply without an id is fine
        return None
    if isinstance(request_id, str) and len(request_id) > MAX_ECHOED_ID:
        return None
    return request_id


def _refusal(request_id: int | str | None, epoch: str, error: RegistryError) -> bytes:
    if isinstance(request_id, str) and len(request_id) > MAX_ECHOED_ID:
        request_id = None
    return protocol.encode_error(request_id, epoch, error)


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
