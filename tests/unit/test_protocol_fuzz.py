"""Fuzz of the decoders: 100,000 hostile inputs from a fixed seed (see tests/fuzz_harness.py)
to the registry request, control request, liveness report, event, heartbeat and reply
decoders. Only BadRequest ever comes out (any typed RegistryError for a reply), and no
input takes more than 50 ms. A longer run: tests/bench/bench_fuzz.py."""

from __future__ import annotations

import time

import pytest

from tests.fuzz_harness import Input, inputs, run_one

SEED = 18
COUNT = 100_000
#: Longest one input may take, seconds (a slow one is timed again: a busy machine is
#: no finding).
SLOWEST = 0.050


def clipped(data: Input) -> str:
    frames = data if isinstance(data, list) else [data]
    return " | ".join(f"{len(f)} bytes {f[:48].hex()}" for f in frames)


def timed(target: str, data: Input) -> tuple[BaseException | None, float]:
    start = time.perf_counter()
    escaped = run_one(target, data)
    return escaped, time.perf_counter() - start


@pytest.mark.timeout(120)
def test_no_hostile_input_gets_anything_but_a_bad_request_out_of_a_decoder_nor_takes_50_ms(
) -> None:
    findings: list[str] = []
    seen = 0
    for target, data in inputs(SEED, COUNT):
        seen += 1
        escaped, took = timed(target, data)
        if took > SLOWEST:
            took = min(took, *(timed(target, data)[1] for _ in range(3)))
        if escaped is not None:
            findings.append(f"{target}: {type(escaped).__name__}: {str(escaped)[:120]} "
                            f"on {clipped(data)}")
        elif took > SLOWEST:
            findings.append(f"{target}: took {took * 1000:.0f} ms on {clipped(data)}")
    assert seen == COUNT
    assert not findings, f"{len(findings)} findings, first: " + "\n".join(findings[:5])
