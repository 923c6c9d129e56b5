"""LIST pages: ``limit`` objects after a continue token, read from the store's key order.

Runs in the registry process, inside a read transaction of the store. The token is
opaque to clients: ``"1."`` followed by the last store key of the previous page in
unpadded URL-safe base64. A page starts strictly after that key, so an object whose key
exists from the first page to the last is served exactly once; a page is read at its own
resourceVersion (there is no snapshot of the whole list to read at).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import lmdb

from ecsm_actors.errors import BadRequest, Internal, RegistryError
from ecsm_actors.protocol import peek_resource_version

_TOKEN_PREFIX = "1."


@dataclass(frozen=True, kw_only=True)
class Page:
    """One page: ``count`` objects concatenated in ``data`` (or ``versions`` pairs), read
    at ``resource_version``; ``continue_token`` is ``""`` on the last page;
    ``remaining`` counts the objects after this page when it was read."""

    count: int
    data: bytes
    versions: list[tuple[str, int]] | None
    resource_version: int
    continue_token: str
    remaining: int


def encode_token(last_key: bytes) -> str:
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(last_key).rstrip(b"=").decode()


def decode_token(token: str, prefix: bytes) -> bytes:
    """The last key a token names; BadRequest unless it is a token of this list."""
    if not token.startswith(_TOKEN_PREFIX):
        raise BadRequest("LIST: the continue token is not one this registry gave")
    body = token[len(_TOKEN_PREFIX):]
    try:
        key = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as e:
        raise BadRequest("LIST: the continue token is not one this registry gave") from e
    if not key.startswith(prefix) or len(key) == len(prefix):
        raise BadRequest("LIST: the continue token belongs to another list (kind or "
                         "namespace differ)")
    return key


def read_page(cursor: lmdb.Cursor, prefix: bytes, after: bytes | None, limit: int,
              resource_version: int, *, versions_from: int | None = None) -> Page:
    """Up to ``limit`` values of the keys under ``prefix`` after ``after`` (all from the
    first when None). ``versions_from``: serve ``[key[versions_from:], rv]`` pairs."""
    values: list[bytes | memoryview] = []
    versions: list[tuple[str, int]] | None = [] if versions_from is not None else None
    last = b""
    found = cursor.set_range(after if after is not None else prefix)
    if found and after is not None and bytes(cursor.key()) == after:
        found = cursor.next()
    while found and len(values if versions is None else versions) < limit:
        key = bytes(cursor.key())
        if not key.startswith(prefix):
            found = False
            break
        value = cursor.value()
        if versions is not None and versions_from is not None:
            try:
                versions.append((key[versions_from:].decode(), peek_resource_version(value)))
            except RegistryError as e:
                raise Internal(f"stored object {key!r} is unreadable: {e}") from e
        else:
            values.append(value)
        last = key
        found = cursor.next()
    remaining = 0
    while found:
        if not bytes(cursor.key()[: len(prefix)]) == prefix:
            break
        remaining += 1
        found = cursor.next()
    count = len(values) if versions is None else len(versions)
    return Page(count=count, data=b"".join(values), versions=versions,
                resource_version=resource_version,
                continue_token=encode_token(last) if remaining else "",
                remaining=remaining)
