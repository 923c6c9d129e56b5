"""Name and timestamp rules shared by every kind: DNS-1123 labels, label keys, RFC 3339.

Owns the syntax checks used by the schemas (each returns an error message or ``None``)
and the one timestamp format of the API (``2026-11-26T08:51:49Z``, UTC, whole seconds).
Pure functions; run in every process. :func:`inline_check` gives a check the inline form
the compiled fast path of validation (:mod:`ecsm_actors.api.compiled`) writes out in place
of a call; :func:`remembered` lets that fast path remember the strings a costly check
found valid.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from ecsm_actors.errors import Cause, Invalid

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


_C = TypeVar("_C", bound=Callable[[str], "str | None"])


def inline_check(text: str, **names: Any) -> Callable[[_C], _C]:
    """Gives a check its inline form: an expression of the str ``{v}`` (and of the values
    ``names``, each written ``{name}``) that is true exactly when the check returns a
    message for ``v`` (``tests/unit/test_api_compiled.py`` compares them)."""

    def mark(check: _C) -> _C:
        check.inline = (text, names)  # type: ignore[attr-defined]
        return check

    return mark


def remembered(check: _C) -> _C:
    """Marks a check that costs more than a set look-up (a regular expression): the fast
    path keeps strings it found valid and looks there first (a check is a pure function
    of its string; the namespace, label keys and image of most writes repeat)."""
    check.remembered = True  # type: ignore[attr-defined]
    return check


@remembered
def dns_label(value: str) -> str | None:
    """RFC 1123 label: at most 63 of ``[a-z0-9-]``, starting and ending alphanumeric."""
    if len(value) > 63:
        return f"must be no more than 63 characters, got {len(value)}"
    if not _DNS_LABEL.match(value):
        return (
            "must be a DNS-1123 label: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return None


@remembered
def qualified_name(value: str) -> str | None:
    """Label/annotation key or finalizer: ``[prefix/]name`` with a DNS subdomain prefix."""
    prefix, slash, name = value.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "prefix must be a DNS-1123 subdomain (e.g. ecsm.sh)"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (
            "name part must be at most 63 of [A-Za-z0-9-_.], starting and ending "
            "alphanumeric"
        )
    return None


@remembered
def label_value(value: str) -> str | None:
    if value and (len(value) > 63 or not _QUALIFIED_NAME.match(value)):
        return "must be empty or at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric"
    return None


@inline_check("not {v}.startswith('/')")
def absolute_path(value: str) -> str | None:
    return None if value.startswith("/") else "must be an absolute path"


@remembered
def timestamp_check(value: str) -> str | None:
    try:
        parse_timestamp(value)
    except Invalid:
        return 'must be an RFC 3339 timestamp such as "2026-11-26T08:51:49Z"'
    return None


def format_timestamp(epoch: float) -> str:
    """RFC 3339 in UTC with whole seconds: ``2026-11-26T08:51:49Z``."""
    return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp (any offset, optional fraction)."""
    if not isinstance(text, str) or not _RFC3339.match(text):
        raise Invalid(f"invalid timestamp {text!r}", [Cause(field="", message="not RFC 3339")])
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).timestamp()
    except ValueError as e:
        raise Invalid(f"invalid timestamp {text!r}", [Cause(field="", message=str(e))]) from e


def now_timestamp() -> str:
    """The current time in the API's timestamp format."""
    return format_timestamp(time.time())
