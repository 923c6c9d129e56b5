"""The ECSM REST layer: URLs, query strings, headers, the envelope rule, typed errors.

Runs in every process that talks to ECSM. One :class:`RestClient` per process (or per
thread pool); its transport keeps connections alive and is thread-safe:
:class:`~ecsm_actors.ecsm.plainhttp.PlainHttpTransport` for ``http://`` (the lean one,
no ``requests`` imported), :class:`RequestsTransport` (a ``requests.Session``) for
``https://`` — see :func:`default_transport`.

Invariants (ecsm-api.md §1):

* URL ``{protocol}://{host}:{port}/api/v1/{resource}[/{name}]``; path segments are
  percent-encoded like Go's ``url.URL`` (``@ : + = & $ , ;`` kept) (§1.1). An empty,
  ``.``/``..`` or slash-carrying *name* is refused locally instead of silently collapsing
  into another URL (A-22).
* Every request sends ``Content-Type`` and ``Accept: application/json`` (§1.2).
* Queries are encoded like Go's ``url.Values.Encode``: keys sorted, values of a repeated
  key in order, form escaping (``serviceIds%5B%5D=a``) (§1.4).
* Success is an HTTP ``2xx`` status line AND envelope ``status == 200`` (§1.7, made
  strict: the Go client ignored the HTTP code, A-1). A non-2xx reply is always an error,
  whatever its body: an ECSM error envelope keeps its typed error (404 →
  :class:`EcsmNotFound`); anything else — an empty body, an HTML page from a proxy, or a
  "success" envelope under an error status — is :class:`EcsmUnavailable` ("HTTP 503 with
  an empty body"), never a success without data. On ``2xx`` an empty body is success
  without data (the callers that need data refuse it, see :mod:`.wire`); a body that is
  not the envelope is an :class:`EcsmDecodeError` with an excerpt of the raw body —
  including JSON nested too deep for the parser, and ``NaN``/``Infinity`` or a number
  beyond the range of a double, which are not JSON (Go's decoder refuses them too).
  ``fieldErrors`` may be a string, an object or an array (stringified, A-2); the message
  and field errors are clipped to :data:`MAX_TEXT` characters.
* Transport failures (refused, timeout, reset, connection dropped) raise
  :class:`EcsmUnavailable` naming the URL. The client never retries.
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, quote_plus

from ecsm_actors.config import EcsmSettings
from ecsm_actors.errors import EcsmApiError, EcsmDecodeError, EcsmNotFound, EcsmUnavailable

if TYPE_CHECKING:
    import requests

logger = logging.getLogger(__name__)

API_PREFIX = "api/v1"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
_PATH_SAFE = "$&+,/:;=@"
_EXCERPT = 200
#: Longest ECSM message or field-error text kept in an error (it may reach a status).
MAX_TEXT = 500

Query = Iterable[tuple[str, str]]


class Transport(Protocol):
    """Sends one HTTP request; returns (HTTP status, body). Raises EcsmUnavailable."""

    def send(self, method: str, url: str, body: bytes | None,
             timeout: tuple[float | None, float | None]) -> tuple[int, bytes]: ...

    def close(self) -> None: ...


def default_transport(base_url: str) -> Transport:
    """The lean plain-HTTP transport for ``http://``, ``requests`` for anything else (TLS)."""
    if base_url.startswith("http://"):
        from ecsm_actors.ecsm.plainhttp import PlainHttpTransport

        return PlainHttpTransport()
    return RequestsTransport()


class RequestsTransport:
    """A keep-alive ``requests.Session`` (imported on first use: it is heavy)."""

    def __init__(self, session: requests.Session | None = None) -> None:
        import requests

        self.session = session or requests.Session()
        # No proxy/netrc lookups from the environment on every call: ECSM is on the local
        # network, and those lookups cost more than the request itself.
        self.session.trust_env = False
        self.session.headers.clear()  # exactly the headers of §1.2 (+ requests' own)
        self.session.headers.update(HEADERS)

    def send(self, method: str, url: str, body: bytes | None,
             timeout: tuple[float | None, float | None]) -> tuple[int, bytes]:
        import requests

        try:
            response = self.session.request(method, url, data=body, timeout=timeout,
                                            allow_redirects=False)
            return response.status_code, response.content
        except requests.Timeout as e:
            raise EcsmUnavailable(url, f"timeout ({_cause(e)})") from e
        except requests.ConnectionError as e:
            raise EcsmUnavailable(url, _cause(e)) from e
        except requests.RequestException as e:
            raise EcsmUnavailable(url, _cause(e)) from e

    def close(self) -> None:
        self.session.close()


def _cause(e: BaseException) -> str:
    """The innermost useful reason of a requests/urllib3 exception chain, on one line."""
    text = str(e)
    for marker in ("Connection refused", "Connection reset", "Read timed out",
                   "Connection aborted", "RemoteDisconnected", "timed out"):
        if marker in text:
            if marker == "RemoteDisconnected":
                return "connection closed without response"
            return marker.lower()
    return text.splitlines()[0][:200] if text else type(e).__name__


def escape_segment(segment: str) -> str:
    """Percent-encode one path segment as Go's url.URL.EscapedPath does (§1.1)."""
    return quote(segment, safe=_PATH_SAFE)


def build_path(*parts: str | tuple[str, str]) -> str:
    """``/api/v1/...`` from resource strings (may contain ``/``) and ``("name", value)``
    pairs whose value must be a single non-empty segment."""
    segments: list[str] = []
    for part in parts:
        if isinstance(part, tuple):
            what, value = part
            if not isinstance(value, str) or value in ("", ".", "..") or "/" in value:
                raise ValueError(f"invalid {what} {value!r}: must be a non-empty path segment")
            segments.append(value)
        else:
            segments.extend(s for s in part.split("/") if s)
    joined = posixpath.normpath("/".join([API_PREFIX, *segments]))
    return "/" + "/".join(escape_segment(s) for s in joined.split("/"))


def encode_query(params: Query) -> str:
    """Go ``url.Values.Encode``: sorted keys (stable for repeated ones), form escaping."""
    items = sorted(params, key=lambda kv: kv[0])
    return "&".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in items)


def query(pairs: Mapping[str, Any] | None = None, **arrays: Sequence[str]) -> list[tuple[str, str]]:
    """Build query pairs: ``None``/empty-string values are left out (the optional params),
    booleans become ``true``/``false``; each ``arrays`` key becomes ``key[]`` repeated."""
    out: list[tuple[str, str]] = []
    for k, v in (pairs or {}).items():
        if v is None or v == "":
            continue
        out.append((k, "true" if v is True else "false" if v is False else str(v)))
    for k, values in arrays.items():
        out.extend((f"{k}[]", str(v)) for v in values)
    return out


def field_errors_text(value: Any) -> str | None:
    """``fieldErrors`` as text: a string as is, an object or array as compact JSON (A-2)."""
    if value is None:
        return None
    if isinstance(value, str):
        return _clip(value)
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    except (ValueError, TypeError, RecursionError):
        return "(unprintable field errors)"
    return _clip(text)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def _excerpt(body: bytes) -> str:
    text = body[:_EXCERPT * 4].decode("utf-8", errors="replace")
    if len(text) > _EXCERPT or len(body) > _EXCERPT * 4:
        return text[:_EXCERPT] + "…"
    return text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"number {text[:40]} out of range")
    return value


def decode_reply(http_status: int, body: bytes, url: str) -> Any:
    """The HTTP status line and the envelope rule together (see the module doc); return
    ``data`` (or None for a ``2xx`` with an empty body or ``data: null``)."""
    if 200 <= http_status < 300:
        return decode_envelope(body)
    if not body.strip():
        raise EcsmUnavailable(url, f"HTTP {http_status} with an empty body")
    try:
        decode_envelope(body)  # an ECSM error envelope raises its typed error here
    except EcsmApiError:
        raise
    except EcsmDecodeError:
        what = f"a body that is not an ECSM envelope ({_excerpt(body)!r})"
    else:
        what = "a success envelope (not trusted under an error status)"
    raise EcsmUnavailable(url, f"HTTP {http_status} with {what}")


def decode_envelope(body: bytes) -> Any:
    """Apply the envelope rule of §1.7 to a response body; return ``data`` (or None)."""
    if not body.strip():
        return None
    try:
        doc = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as e:
        raise EcsmDecodeError(f"failed to decode generic response: JSON nested too deep "
                              f"(raw response: {_excerpt(body)!r})",
                              cause="JSON nested too deep") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise EcsmDecodeError(f"failed to decode generic response: {e} "
                              f"(raw response: {_excerpt(body)!r})",
                              cause="not JSON") from e
    why = None
    if not isinstance(doc, dict):
        why = "the body is not a JSON object"
    else:
        status = doc.get("status", 0)
        message = doc.get("message")
        if status is None:
            status = 0
        if isinstance(status, bool) or not isinstance(status, int):
            why = "status is not an integer"
        elif message is not None and not isinstance(message, str):
            why = "message is not a string"
    if why:
        raise EcsmDecodeError(f"failed to decode generic response: {why} "
                              f"(raw response: {_excerpt(body)!r})")
    if status != 200:
        cls = EcsmNotFound if status == 404 else EcsmApiError
        raise cls(status, _clip(message or ""), field_errors_text(doc.get("fieldErrors")))
    return doc.get("data")


class RestClient:
    """Sends ECSM requests and returns the envelope's ``data``; never retries."""

    def __init__(self, base_url: str, *, connect_timeout: float | None = 3.0,
                 read_timeout: float | None = 10.0, transport: Transport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.transport: Transport = transport or default_transport(self.base_url)

    @classmethod
    def from_settings(cls, settings: EcsmSettings, *,
                      transport: Transport | None = None) -> RestClient:
        return cls(f"{settings.protocol}://{settings.host}:{settings.port}",
                   connect_timeout=settings.connect_timeout,
                   read_timeout=settings.read_timeout, transport=transport)

    def url(self, path: str, params: Query = ()) -> str:
        qs = encode_query(params)
        return f"{self.base_url}{path}?{qs}" if qs else f"{self.base_url}{path}"

    def request(self, method: str, path: str, *, params: Query = (), body: Any = None,
                send_body: bool = False) -> Any:
        """One call: ``path`` from :func:`build_path`; ``body`` is JSON-encoded when given
        (or when ``send_body`` asks for a literal ``null``). Returns ``data`` or None."""
        url = self.url(path, params)
        payload = None
        if body is not None or send_body:
            try:
                payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                                     allow_nan=False).encode()
            except (ValueError, RecursionError) as e:  # e.g. a spec echoed back from ECSM
                raise EcsmDecodeError(f"cannot encode the body of {method} {path}: {e}",
                                      cause="a request body that cannot be encoded") from e
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("ecsm %s %s", method, url)
        status, content = self.transport.send(method, url, payload, self.timeout)
        return decode_reply(status, content, url)

    def get(self, path: str, params: Query = ()) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any, params: Query = ()) -> Any:
        return self.request("POST", path, params=params, body=body, send_body=True)

    def put(self, path: str, body: Any = None, params: Query = (), *,
            send_body: bool = True) -> Any:
        return self.request("PUT", path, params=params, body=body, send_body=send_body)

    def delete(self, path: str, body: Any = None, params: Query = ()) -> Any:
        return self.request("DELETE", path, params=params, body=body)

    def close(self) -> None:
        self.transport.close()
