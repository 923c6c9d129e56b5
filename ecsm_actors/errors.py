"""Every exception the project raises, in one tree.

Third-party exceptions (zmq, lmdb, requests, msgpack, yaml) are wrapped where the library is
called (``raise ... from e``), so callers only ever catch these::

    EcsmActorsError
    ├── ConfigError                 bad configuration value or file (names the key)
    ├── ManifestError               a manifest file cannot be read or parsed (names file/line)
    ├── RegistryError               an answer of the registry, or failing to get one; .code
    │   ├── NotFound
    │   ├── AlreadyExists
    │   ├── Conflict                stale resourceVersion (optimistic concurrency)
    │   ├── Invalid                 validation failed; .causes lists field errors
    │   ├── Expired                 WATCH_SINCE asked for a compacted resourceVersion
    │   ├── BadRequest              malformed, oversized or unknown-version frame or op
    │   ├── StoreFull               the LMDB map is (nearly) full; the write was refused
    │   ├── Internal                an unexpected failure inside the registry
    │   └── Unavailable             the registry did not answer in time / is not running
    ├── EcsmError                   talking to the ECSM REST API
    │   ├── EcsmApiError            envelope status != 200; .status .message .field_errors
    │   │   └── EcsmNotFound        the object does not exist on ECSM
    │   ├── EcsmUnavailable         connection refused, timeout, reset; .url
    │   └── EcsmDecodeError         the body is not the JSON the contract promises
    ├── TerminalError               a reconcile failure that retrying cannot fix
    ├── ControlError                the supervisor's control socket refused or is absent
    └── MigrationError              ``store migrate`` refused, or interrupted (says how to resume)

Every class carries a message fit for one line on a terminal.

Peer input is never echoed raw: :func:`describe_input` gives a bounded, escaped, non
recursive description of any value (a list nested a thousand deep, a 4 MiB string), and a
:class:`RegistryError` keeps at most :data:`MAX_MESSAGE` characters of its message and of
each cause and at most :data:`MAX_CAUSES` causes (then "... and N more"), so what goes on
the wire or into a log line stays a few KiB whatever the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, ClassVar

#: Longest message, cause field or cause message an error keeps, characters.
MAX_MESSAGE = 1024
#: Causes an error keeps; beyond them, the last one says how many more there were.
MAX_CAUSES = 20
#: Longest preview :func:`describe_input` quotes by default, characters.
PREVIEW = 80


def _escape_char(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{code:02x}")
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_text(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\n``, ``\\x07``, ``\\u202e``):
    controls, line/paragraph separators, bidi embeddings, overrides and isolates,
    zero-width and other invisible format characters, the BOM, unassigned and private-use
    code points, spaces other than U+0020. Idempotent (a backslash is not escaped)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


def clip_text(text: str, limit: int = MAX_MESSAGE) -> str:
    """At most ``limit`` characters of ``text`` on one line: non-printable characters
    escaped (:func:`escape_text`); a cut marked ``...``. Idempotent."""
    head = escape_text(text[: limit + 1])
    if len(text) <= limit and len(head) <= limit:
        return head
    return head[: max(0, limit - 3)] + "..."


def integer_text(value: int, limit: int = PREVIEW) -> str:
    """``value`` in digits, or ``an integer of about N digits`` when that is longer than
    ``limit`` (never converting a huge integer: ``str()`` past 4300 digits raises)."""
    if value.bit_length() <= 3 * limit:
        text = str(value)
        if len(text) <= limit:
            return text
    return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"


def describe_input(value: Any, limit: int = PREVIEW) -> str:
    """A one-line description of an untrusted value, for an error message or a log line:
    its type and a preview of at most ``limit`` characters (``string "PING"``,
    ``integer 7``, ``list of 1 item``, ``map of 3 entries``, ``bytes of length 9``).

    Bounded and cheap whatever the value: a container is never walked (only its length
    is told), nothing recurses, no ``repr`` of peer data is taken, an integer of a million
    digits is not converted to text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean true" if value else "boolean false"
    if isinstance(value, int):
        text = integer_text(value, limit)
        return text if text.startswith("an ") else f"integer {text}"
    if isinstance(value, float):
        return f"number {clip_text(repr(value), limit)}"
    if isinstance(value, str):
        return f'string "{clip_text(value, limit)}"'
    if isinstance(value, dict):
        return f"map of {len(value)} {'entry' if len(value) == 1 else 'entries'}"
    if isinstance(value, list | tuple):
        return f"list of {len(value)} {'item' if len(value) == 1 else 'items'}"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"bytes of length {len(value)}"
    return clip_text(type(value).__name__, limit)


class EcsmActorsError(Exception):
    """Root of every error the project raises on purpose."""


class ConfigError(EcsmActorsError):
    """A configuration value, file or flag is invalid. The message names the key."""


class ManifestError(EcsmActorsError):
    """A manifest cannot be read or parsed. The message names the file and line."""


@dataclass(frozen=True, kw_only=True)
class Cause:
    """One field-level reason of an ``Invalid`` error (Kubernetes ``StatusCause``)."""

    field: str
    message: str

    def to_wire(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class RegistryError(EcsmActorsError):
    """An error answer of the registry. ``code`` is the wire error code."""

    code: ClassVar[str] = "Internal"
    #: True on the recorded outcome of an earlier request with the same requestId.
    replayed: bool = False

    def __init__(self, message: str, causes: Sequence[Cause] = ()) -> None:
        self.message = clip_text(message)
        self.causes = _bounded_causes(causes)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if not self.causes:
            return self.message
        return f"{self.message}: " + "; ".join(str(c) for c in self.causes)

    def to_wire(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "causes": [c.to_wire() for c in self.causes],
        }


def _bounded_causes(causes: Sequence[Cause]) -> tuple[Cause, ...]:
    """At most :data:`MAX_CAUSES` causes, each clipped, then one counting the rest (a
    list of exactly one more is kept whole: it may already end with such a count)."""
    if not isinstance(causes, list | tuple):
        causes = tuple(causes)
    kept = causes if len(causes) <= MAX_CAUSES + 1 else causes[:MAX_CAUSES]
    bounded = tuple(Cause(field=clip_text(c.field), message=clip_text(c.message))
                    for c in kept)
    if len(kept) < len(causes):
        bounded += (Cause(field="", message=f"... and {len(causes) - len(kept)} more"),)
    return bounded


class NotFound(RegistryError):
    code = "NotFound"


class AlreadyExists(RegistryError):
    code = "AlreadyExists"


class Conflict(RegistryError):
    code = "Conflict"


class Invalid(RegistryError):
    code = "Invalid"


class Expired(RegistryError):
    code = "Expired"


class BadRequest(RegistryError):
    code = "BadRequest"


class StoreFull(RegistryError):
    code = "StoreFull"


class Internal(RegistryError):
    code = "Internal"


class Unavailable(RegistryError):
    code = "Unavailable"


class Forbidden(RegistryError):
    """The peer's key may not do this (a ``read`` key asked for a write)."""

    code = "Forbidden"


class Aborted(RegistryError):
    """Not applied: another write of the same all-or-nothing (atomic) batch failed."""

    code = "Aborted"


class DeadlineExceeded(Unavailable):
    """A request's overall deadline passed, retries included. ``applied`` says what is
    known of a write: True (applied), False (known not applied), None (unknown). A
    registry answers it (code ``Unavailable``, its error map with ``applied`` too) when
    its store could not tell whether a write landed (etcd's answer lost), so a client
    never takes that answer for a request that was not served."""

    def __init__(self, message: str, causes: Sequence[Cause] = (), *,
                 applied: bool | None = None) -> None:
        super().__init__(message, causes)
        self.applied = applied

    def to_wire(self) -> dict[str, Any]:
        return {**super().to_wire(), "applied": self.applied}


REGISTRY_ERRORS: dict[str, type[RegistryError]] = {
    cls.code: cls
    for cls in (
        NotFound,
        AlreadyExists,
        Conflict,
        Invalid,
        Expired,
        BadRequest,
        StoreFull,
        Internal,
        Unavailable,
        Forbidden,
        Aborted,
    )
}


def registry_error_from_wire(error: dict[str, Any]) -> RegistryError:
    """Rebuild the typed exception from a reply's ``error`` map (unknown codes → Internal)."""
    code = error.get("code")
    cls = REGISTRY_ERRORS.get(code, Internal) if isinstance(code, str) else Internal
    wire_causes = error.get("causes")
    if not isinstance(wire_causes, list):
        wire_causes = []
    causes = [
        Cause(field=_wire_text(c.get("field", "")), message=_wire_text(c.get("message", "")))
        for c in islice(wire_causes, MAX_CAUSES + 1)
        if isinstance(c, dict)
    ]
    if len(wire_causes) > MAX_CAUSES + 1:
        causes[MAX_CAUSES:] = [Cause(field="", message=f"... and "
                                     f"{len(wire_causes) - MAX_CAUSES} more")]
    if cls is Unavailable and "applied" in error:  # a write of unknown outcome
        applied = error["applied"]
        return DeadlineExceeded(_wire_text(error.get("message", "")), causes,
                                applied=applied if isinstance(applied, bool) else None)
    return cls(_wire_text(error.get("message", "")), causes)


def _wire_text(value: Any) -> str:
    """A text field of an error reply: the string clipped, anything else described."""
    return clip_text(value) if isinstance(value, str) else describe_input(value)


class EcsmError(EcsmActorsError):
    """Any failure talking to the ECSM REST API."""


class EcsmApiError(EcsmError):
    """ECSM answered with an envelope whose ``status`` is not 200."""

    def __init__(self, status: int, message: str, field_errors: str | None = None) -> None:
        self.status = status
        self.message = message
        self.field_errors = field_errors
        text = f"ecsm api error (status {status}): {message}"
        if field_errors:
            text += f" (field: {field_errors})"
        super().__init__(text)

    @property
    def is_client_error(self) -> bool:
        """A 4xx answer: the request itself is wrong and retrying will not help."""
        return 400 <= self.status < 500


class EcsmNotFound(EcsmApiError):
    """The ECSM object does not exist."""


class EcsmUnavailable(EcsmError):
    """ECSM could not be reached: connection refused, timeout, reset."""

    def __init__(self, url: str, cause: str) -> None:
        self.url = url
        self.cause = cause
        super().__init__(f"ECSM unreachable at {url}: {cause}")


class EcsmDecodeError(EcsmError):
    """The body is not the JSON the ECSM contract promises. ``cause`` names the kind of
    fault in a few stable words (no ids, no excerpts): rate-limited warnings count by it."""

    def __init__(self, message: str, *, cause: str = "") -> None:
        self.cause = cause or message.split(":", 1)[0][:80]
        super().__init__(message)


class TerminalError(EcsmActorsError):
    """A reconcile failure that retrying cannot fix; recorded on the object, not retried."""

    def __init__(self, message: str, reason: str = "TerminalError") -> None:
        self.reason = reason
        super().__init__(message)


class ControlError(EcsmActorsError):
    """The supervisor's control socket refused the request or nobody is listening."""


class MigrationError(EcsmActorsError):
    """``ecsm-operator store migrate`` refused to start (an operator running, a target not
    empty, etcd unreachable), or was interrupted: the message says that the source is
    intact and the command that starts over."""
