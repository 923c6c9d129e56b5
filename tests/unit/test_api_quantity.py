"""Quantities: the table of accepted spellings and the MiB conversion ECSM needs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ecsm_actors.api import parse_quantity, to_bytes, to_mib
from ecsm_actors.errors import Invalid

TABLE = [
    ("512Mi", 512 * 2**20, 512),
    ("1Gi", 2**30, 1024),
    ("1.5Gi", 3 * 2**29, 1536),
    ("100M", 100_000_000, 96),
    ("1G", 10**9, 954),
    ("64Ki", 65536, 1),
    ("2k", 2000, 1),
    ("1Ti", 2**40, 2**20),
    ("1e9", 10**9, 954),
    ("5E2", 500, 1),
    ("1E", 10**18, 953674316407),
    (" 256Mi ", 256 * 2**20, 256),
    (".5Gi", 2**29, 512),
    ("1048576", 2**20, 1),
    (1048576, 2**20, 1),
    (0, 0, 0),
    ("1500m", 2, 1),
]


@pytest.mark.parametrize(("text", "nbytes", "mib"), TABLE, ids=[repr(t[0]) for t in TABLE])
def test_a_quantity_converts_to_bytes_and_whole_mib_rounded_up(
    text: str | int, nbytes: int, mib: int
) -> None:
    assert to_bytes(text) == nbytes
    assert to_mib(text) == mib


def test_parsing_is_exact() -> None:
    assert parse_quantity("1.5Gi") == Decimal(3 * 2**29)
    assert parse_quantity("1500m") == Decimal("1.5")


@pytest.mark.parametrize("bad", ["", "Mi", "1MB", "1mi", "-1Gi", "1 Gi", "1.2.3", "0x10",
                                 "1e99", -1, 1.5, True, None, [1]])
def test_anything_else_is_not_a_quantity(bad: object) -> None:
    with pytest.raises(Invalid):
        parse_quantity(bad)  # type: ignore[arg-type]
