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
    └── ControlError                the supervisor's control socket refused or is absent

Every class carries a message fit for one line on a terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


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

    def __init__(self, message: str, causes: Sequence[Cause] = ()) -> None:
        self.message = message
        self.causes = tuple(causes)
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
    )
}


def registry_error_from_wire(error: dict[str, Any]) -> RegistryError:
    """Rebuild the typed exception from a reply's ``error`` map (unknown codes → Internal)."""
    cls = REGISTRY_ERRORS.get(str(error.get("code")), Internal)
    causes = [
        Cause(field=str(c.get("field", "")), message=str(c.get("message", "")))
        for c in error.get("causes") or ()
        if isinstance(c, dict)
    ]
    return cls(str(error.get("message", "")), causes)


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
