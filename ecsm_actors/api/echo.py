"""Bounded, escaped echoes of untrusted input: what a message or a terminal may show of it.

Owns :func:`describe` (``string "abc"``, ``integer 3``, ``map``) and :func:`key_text`;
:func:`escape` (control, bidi and invisible format characters made visible as ``\\n``,
``\\x07``, ``\\u202e``), :func:`clip` (escape, then cut to a few dozen characters) and
:func:`integer_text` are those of :mod:`ecsm_actors.errors`, the one implementation.
Pure; runs in every process: the registry quotes input in its error replies and logs, ``ecsm-cli``
escapes every string it prints in a human-readable view. Invariants: the output of each
function is bounded by its ``limit`` whatever the input (a 4 MiB string, an integer of
a million digits, a list nested a thousand deep: nothing is walked, nothing recurses);
:func:`escape` is idempotent (a backslash is not itself escaped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecsm_actors.errors import PREVIEW, clip_text, describe_input, escape_text, integer_text

#: Longest text :func:`clip` keeps by default (before its "...").
LIMIT = PREVIEW

#: ``text`` with every control, bidi and invisible format character escaped (the one
#: escaper of the project: :func:`ecsm_actors.errors.escape_text`).
escape = escape_text

__all__ = ["LIMIT", "clip", "describe", "escape", "integer_text", "key_text"]


def clip(text: str, limit: int = LIMIT) -> str:
    """``text`` escaped and cut to about ``limit`` characters (``...`` marks a cut)."""
    return clip_text(text, limit)


def describe(value: Any, limit: int = LIMIT) -> str:
    """A short description of a value: ``string "abc"``, ``integer 3``, ``map``, ``list``
    (:func:`ecsm_actors.errors.describe_input`, without the sizes of containers, which a
    field path's message does not need)."""
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "list"
    return describe_input(value, limit)


def key_text(key: Any, limit: int = LIMIT) -> str:
    """A map key as it appears in a field path: the string clipped, anything else described."""
    return clip(key, limit) if isinstance(key, str) else describe(key, limit)
