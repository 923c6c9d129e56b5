"""Kubernetes-style resource quantities ("512Mi", "1Gi", "100M", "1.5Gi", plain integers).

Owns parsing of the quantities used by ``spec.template.resources.limits`` and their
conversion to the whole mebibytes ECSM wants (``memoryLimitMB``, ``disk.limitMB``). Pure
functions; runs in every process. Invariants: parsing is exact (``Decimal``), conversions
to whole units round **up** so a limit is never silently lowered, negative quantities are
refused, and a plain integer means bytes (as in Kubernetes); the work is bounded: a
quantity of more than :data:`MAX_TEXT` characters or an integer beyond :data:`MAX_INT`
is refused before any arithmetic.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from ecsm_actors.errors import Cause, Invalid

MIB = 1 << 20
#: Longest quantity text parsed (``"1.5Gi"`` needs five characters).
MAX_TEXT = 64
#: Largest plain integer quantity (bytes) parsed.
MAX_INT = 2**64

_SUFFIXES: dict[str, int] = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
    "Ti": 1 << 40,
    "Pi": 1 << 50,
    "Ei": 1 << 60,
}

_QUANTITY = re.compile(
    r"^(?P<number>\+?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<exponent>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?)$"
)

FORMAT_HINT = 'expected a quantity such as "512Mi", "1Gi", "100M" or an integer number of bytes'


def parse_quantity(quantity: str | int) -> Decimal:
    """The exact value of a quantity (bytes for memory/disk). Raises ``Invalid``."""
    if isinstance(quantity, bool) or not isinstance(quantity, str | int):
        raise _invalid(quantity, FORMAT_HINT)
    if isinstance(quantity, int):
        if quantity < 0:
            raise _invalid(quantity, "must not be negative")
        if quantity > MAX_INT:
            raise _invalid(quantity, "out of range")
        return Decimal(quantity)
    if len(quantity) > MAX_TEXT:
        raise _invalid(quantity, f"must be no more than {MAX_TEXT} characters")
    match = _QUANTITY.match(quantity.strip())
    if not match:
        raise _invalid(quantity, FORMAT_HINT)
    try:
        number = Decimal(match["number"])
    except InvalidOperation as e:  # pragma: no cover - the regex admits only decimals
        raise _invalid(quantity, FORMAT_HINT) from e
    if match["exponent"]:
        exponent = int(match["exponent"][1:])
        if abs(exponent) > 30:
            raise _invalid(quantity, "exponent out of range")
        return number.scaleb(exponent)
    suffix = match["suffix"] or ""
    if suffix == "m":
        return number / 1000
    return number * _SUFFIXES[suffix]


def to_bytes(quantity: str | int) -> int:
    """Whole bytes of a quantity, rounded up."""
    return math.ceil(parse_quantity(quantity))


def to_mib(quantity: str | int) -> int:
    """Whole mebibytes of a quantity, rounded up ("512Mi" → 512, "1Gi" → 1024,
    "100M" → 96). ECSM's ``memoryLimitMB`` / ``limitMB`` take this value."""
    return math.ceil(parse_quantity(quantity) / MIB)


def normalize_quantity(quantity: str | int) -> str:
    """The wire form: the string as written (trimmed), or the integer as a string."""
    parse_quantity(quantity)
    return str(quantity).strip()


def format_bytes(size: int) -> str:
    """The shortest exact binary form of a size: ``1Ti``, ``512Mi``, ``1000`` (bytes)."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        factor = _SUFFIXES[suffix]
        if size and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def _invalid(quantity: object, message: str) -> Invalid:
    short = (isinstance(quantity, str) and len(quantity) <= 80) or (
        isinstance(quantity, int) and quantity.bit_length() <= 64)
    shown = repr(quantity) if short else f"value of type {type(quantity).__name__}"
    return Invalid(f"invalid quantity {shown}", [Cause(field="", message=message)])
