"""``ecsm-cli apply|create|delete`` of many objects: their writes in few BATCH requests.

Runs in the CLI process. The writes go in order, in BATCH requests of at most
``registry.max_batch_writes`` writes and about ``registry.max_frame_bytes`` (a write
larger than that goes alone, and the registry's refusal is that object's own outcome).
Each request carries one request id, reused by the client on every retry, so a batch that
landed before its answer was lost is answered with its recorded outcomes (and prints the
same lines), never applied twice. ``atomic`` asks for all or none in one transaction: it
needs the writes to fit in one request, and is refused before anything is sent when they
do not.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ecsm_actors import protocol
from ecsm_actors.errors import EcsmActorsError, Forbidden, RegistryError, Unavailable
from ecsm_actors.registry.results import BatchItem, BatchResult

#: Room kept in a frame for the envelope and the BATCH fields around the writes, bytes.
FRAME_OVERHEAD = 4096


class BatchClient(Protocol):
    def batch(self, writes: Sequence[Mapping[str, Any]], *, atomic: bool = False,
              request_id: str | None = None, dry_run: bool = False) -> BatchResult: ...


@dataclass(frozen=True, kw_only=True)
class Limits:
    max_writes: int
    max_bytes: int


class TooLargeForAtomic(EcsmActorsError):
    """``--atomic`` writes that do not fit in one request (nothing was sent)."""


def chunks(writes: Sequence[Mapping[str, Any]], limits: Limits) -> Iterator[range]:
    """Index ranges of ``writes``, in order, each within ``limits``."""
    budget = max(1, limits.max_bytes - FRAME_OVERHEAD)
    start, size = 0, 0
    for i, write in enumerate(writes):
        length = len(protocol.pack(dict(write)))
        full = i - start >= limits.max_writes or (i > start and size + length > budget)
        if full:
            yield range(start, i)
            start, size = i, 0
        size += length
    if start < len(writes):
        yield range(start, len(writes))


def send(client: BatchClient, writes: Sequence[Mapping[str, Any]], limits: Limits, *,
         atomic: bool = False, dry_run: bool = False) -> Iterator[BatchItem]:
    """The outcome of each write, in order, as each request is answered. A request refused
    as a whole (e.g. a write too large for a frame) makes that refusal the outcome of each
    of its writes; an unreachable registry, or a key that may not write, raises (every
    other request would fail too). ``dry_run``: the registry answers what each write
    would do, storing nothing."""
    parts = list(chunks(writes, limits))
    if atomic and len(parts) > 1:
        raise TooLargeForAtomic(
            f"--atomic: {len(writes)} objects do not fit in one request (at most "
            f"{limits.max_writes} writes and {limits.max_bytes} bytes: "
            f"registry.max_batch_writes, registry.max_frame_bytes); nothing was applied")
    for part in parts:
        try:
            result = client.batch([writes[i] for i in part], atomic=atomic,
                                  **({"dry_run": True} if dry_run else {}))
        except (Unavailable, Forbidden):
            raise  # the same for every write: one line, not one per object
        except RegistryError as e:
            yield from (BatchItem(ok=False, error=e) for _ in part)
            continue
        yield from result.results
