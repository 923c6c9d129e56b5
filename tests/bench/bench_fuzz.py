"""Long fuzz of the protocol's decoders (the suite runs 100,000 inputs of seed 18).

Run: ``.venv/bin/python tests/bench/bench_fuzz.py [--seed N] [--count N] [--slow MS]``
(default: seed 1, 1,000,000 inputs, about a minute on one core).

Prints inputs/s, what came out of the decoders by target and exception type (a decoder
may only raise BadRequest, and the reply decoder any typed RegistryError), every other
exception that escaped with the input that caused it, and the slowest inputs. Exits 1
when an exception escaped or an input took longer than ``--slow``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ecsm_actors.errors import RegistryError  # noqa: E402
from tests.fuzz_harness import DECODERS, Input  # noqa: E402
from tests.fuzz_harness import inputs as fuzz_inputs  # noqa: E402


def shown(data: Input) -> str:
    frames = data if isinstance(data, list) else [data]
    return " | ".join(f"{len(f)} B {f[:40].hex()}" for f in frames)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--slow", type=float, default=50.0, help="slowest input allowed, ms")
    args = parser.parse_args()
    outcomes: Counter[tuple[str, str]] = Counter()
    escaped: list[str] = []
    slowest: list[tuple[float, str, str]] = []
    decode_time = 0.0
    start = time.perf_counter()
    for target, data in fuzz_inputs(args.seed, args.count):
        decode = DECODERS[target]
        t = time.perf_counter()
        try:
            decode(data)
            outcome = "decoded"
        except RegistryError as e:
            outcome = type(e).__name__
            if target != "reply" and outcome != "BadRequest":
                escaped.append(f"{target}: {outcome}: {str(e)[:100]} on {shown(data)}")
        except Exception as e:  # noqa: BLE001 - the finding
            outcome = f"ESCAPED {type(e).__name__}"
            escaped.append(f"{target}: {type(e).__name__}: {str(e)[:100]} on {shown(data)}")
        took = time.perf_counter() - t
        decode_time += took
        outcomes[(target, outcome)] += 1
        if len(slowest) < 5 or took > slowest[-1][0]:
            slowest = sorted([*slowest, (took, target, shown(data))], reverse=True)[:5]
    wall = time.perf_counter() - start
    print(f"fuzz of the decoders: seed {args.seed}, {args.count:,} inputs in {wall:.1f} s: "
          f"{args.count / wall:,.0f} inputs/s generated and decoded, "
          f"{args.count / decode_time:,.0f} inputs/s decoded alone")
    for target in DECODERS:
        row = {o: n for (t, o), n in sorted(outcomes.items()) if t == target}
        print(f"  {target:<10} " + ", ".join(f"{o} {n:,}" for o, n in row.items()))
    print("slowest inputs:")
    for took, target, text in slowest:
        print(f"  {took * 1000:7.2f} ms  {target:<10} {text}")
    too_slow = [s for s in slowest if s[0] * 1000 > args.slow]
    print(f"escaped: {len(escaped)}" + "".join(f"\n  {e}" for e in escaped[:20]))
    return 1 if escaped or too_slow else 0


if __name__ == "__main__":
    sys.exit(main())
