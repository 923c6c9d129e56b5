"""Bounded, escaped echoes of untrusted input: what a message or a terminal may show of it.

Owns :func:`escape` (control, bidi and invisible format characters made visible as
``\\n``, ``\\x07``, ``\\u202e``), :func:`clip` (escape, then cut to a few dozen
characters) and :func:`describe` (``string "abc"``, ``integer 3``, ``map``). Pure; runs in
every process: the registry quotes input in its error replies and logs, ``ecsm-cli``
escapes every string it prints in a human-readable view. Invariants: the output of each
function is bounded by its ``limit`` whatever the input (a 4 MiB string, an integer of
a million digits, a list nested a thousand deep: nothing is walked, nothing recurses);
:func:`escape` is idempotent (a backslash is not itself escaped).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: C0 and C1 controls, DEL, line/paragraph separators, bidi embeddings, overrides and
#: isolates, zero-width and other invisible format characters, the BOM.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u2069"
    "\ufeff\ufff9-\ufffb]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

#: Longest text :func:`clip` keeps by default (before its "...").
LIMIT = 80


def _escaped(match: re.Match[str]) -> str:
    char = match[0]
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every control, bidi and invisible format character escaped."""
    return _UNSAFE.sub(_escaped, text)


def clip(text: str, limit: int = LIMIT) -> str:
    """``text`` escaped and cut to about ``limit`` characters (``...`` marks a cut)."""
    head = escape(text[: limit + 1])
    if len(text) <= limit and len(head) <= limit:
        return head
    return head[: max(0, limit - 3)] + "..."


def integer_text(value: int, limit: int = LIMIT) -> str:
    """``value`` in digits, or ``an integer of about N digits`` when that is too long (and
    ``str()`` of an integer past 4300 digits raises)."""
    if value.bit_length() <= limit * 3:
        text = str(value)
        if len(text) <= limit:
            return text
    digits = int(value.bit_length() * 0.30103) + 1
    return f"an integer of about {digits} digits"


def describe(value: Any, limit: int = LIMIT) -> str:
    """A short description of a value: ``string "abc"``, ``integer 3``, ``map``, ``list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        text = integer_text(value, limit)
        return f"integer {text}" if text[0] != "a" else text
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f'string "{clip(value, limit)}"'
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, bytes | bytearray):
        return f"bytes of length {len(value)}"
    return clip(type(value).__name__, limit)


def key_text(key: Any, limit: int = LIMIT) -> str:
    """A map key as it appears in a field path: the string clipped, anything else described."""
    return clip(key, limit) if isinstance(key, str) else describe(key, limit)
