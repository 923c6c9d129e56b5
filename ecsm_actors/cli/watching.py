"""The engine of ``ecsm-cli watch``: every change of a kind printed exactly once, across
stalls, resets, blackouts and CLI restarts.

Runs in the CLI process; :mod:`.desired` wires it to a registry client, a subscriber and
the terminal, tests to fakes and a fake clock (it never sleeps: it waits in
``EventSource.recv``).

Invariants:

* ``mark`` is where the watch stands in the registry's event chain, events of every kind
  counted (:class:`~ecsm_actors.protocol.ChainMark`: the versions are global; with etcd
  they are not contiguous, each event names its predecessor). An event at or below it is
  a duplicate and is dropped; an event that does not continue the chain, or a heartbeat
  ahead of it, reveals a gap, filled by a replay (``WATCH_SINCE`` pages) before anything
  newer is shown. So each change is shown once and in order, whatever the subscriber
  lost or delivered twice.
* The epoch is read (PING) before anything is compared with it. A message of another
  epoch makes the engine ask the registry; a replaced store is said in one line and
  watched from its current version (a fresh start). A ``--since`` from a store that has
  been replaced since it was seen (:class:`ResumeFile` remembers each endpoint's epoch)
  is refused at start.
* Silence is never silent: when neither a heartbeat nor an event came for
  :func:`silence_threshold` (three heartbeat periods — the configured one, or the
  registry's as observed when longer — and a margin of a few round trips),
  one line ``link silent for N s, reconnecting…`` goes to the notices, the subscriber is
  re-created and the missed changes replayed from ``mark``; a registry that cannot be
  reached then is tried again at the next threshold, with the next line.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ecsm_actors.errors import Expired, Unavailable
from ecsm_actors.files import replace_atomically
from ecsm_actors.protocol import ChainMark, Event, Heartbeat, Link
from ecsm_actors.registry.client import WatchResult

#: Heartbeat periods without any message before the link is called silent.
SILENT_PERIODS = 3
#: Smallest and largest margin added to them, seconds (else 4 round trips).
MIN_MARGIN = 1.0
MAX_MARGIN = 10.0
#: Gaps between heartbeats whose median tells the registry's period.
HEARTBEAT_SAMPLES = 3
#: A replay reply of at least this many events may have been cut at a page: ask again.
PAGE_HINT = 1000


class EventSource(Protocol):
    """A subscription to the registry's events (:class:`~ecsm_actors.registry.client.
    Subscriber`)."""

    def recv(self, timeout: float | None) -> Event | Heartbeat | None: ...

    def close(self) -> None: ...


class ReplaySource(Protocol):
    """The registry requests the engine makes (:class:`~ecsm_actors.registry.client.
    RegistryClient`)."""

    def ping(self) -> dict[str, Any]: ...

    def watch_since(self, resource_version: int) -> WatchResult: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...


class _Done(Exception):
    """Internal: the watch reached its count."""


def silence_threshold(heartbeat_interval: float, round_trip: float) -> float:
    """Seconds without a message after which the stream is taken for dead: three
    heartbeat periods and four round trips (at least :data:`MIN_MARGIN`, at most
    :data:`MAX_MARGIN`: a round trip measured across retries is no link's)."""
    return SILENT_PERIODS * heartbeat_interval + min(MAX_MARGIN,
                                                     max(MIN_MARGIN, 4 * round_trip))


@dataclass(frozen=True, kw_only=True)
class WatchOptions:
    kind: str
    #: Only this namespace; None: every namespace.
    namespace: str | None
    #: Replay every change after this resourceVersion first (None: from now).
    since: int | None = None
    #: The epoch of the store ``since`` was seen in, when known (:class:`ResumeFile`).
    since_epoch: str | None = None
    #: When that store was replaced since: True refuses (``--since``), False says so in
    #: one line and watches from now (``--resume``).
    strict: bool = True
    #: Exit after this many changes shown — at the end of a revision: the changes of one
    #: revision (an etcd transaction, e.g. an atomic batch) are shown together, so a
    #: watch always stops at a version it can resume after without showing one twice.
    count: int | None = None
    #: Exit after this many seconds without a change shown.
    timeout: float | None = None
    #: The registry's heartbeat period, seconds.
    heartbeat_interval: float = 1.0


class Watch:
    """One ``watch``: call :meth:`run`; :attr:`last` and :attr:`epoch` tell where it
    stopped (``last`` is None until the registry answered)."""

    def __init__(self, registry: ReplaySource, subscribe: Callable[[], EventSource],
                 options: WatchOptions, *, emit: Callable[[Event], None],
                 notice: Callable[[str], None], clock: Clock = time) -> None:
        self.registry = registry
        self.subscribe = subscribe
        self.options = options
        self.emit = emit
        self.notice = notice
        self.clock = clock
        self.mark: ChainMark | None = None
        self.epoch = ""
        self.printed = 0
        self.reconnects = 0
        self._round_trip = 0.0
        self._heartbeat_at: float | None = None
        self._heartbeat_gaps: list[float] = []

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        """Watch until the count is reached or the timeout passes (or an interrupt)."""
        opts = self.options
        sub = self.subscribe()  # before the version is read: nothing falls in between
        try:
            info = self._ping()
            self.epoch = str(info["epoch"])
            replaced = (opts.since is not None and bool(opts.since_epoch)
                        and opts.since_epoch != self.epoch)
            if replaced and opts.strict:
                raise Expired(
                    f"resourceVersion {opts.since} was seen in a registry store that has "
                    f"been replaced since (new epoch): watch again without --since")
            if opts.since is None or replaced:
                self.mark = ChainMark(int(info["resourceVersion"]))
                if replaced:
                    self.notice(f"the registry store was replaced since resourceVersion "
                                f"{opts.since} was seen (new epoch): watching from its "
                                f"resourceVersion {self.last}")
            else:
                self.mark = ChainMark(opts.since)
                try:
                    self._catch_up(int(info["resourceVersion"]), resuming=True)
                except Expired as e:
                    self.mark = None  # nothing to resume from
                    raise Expired(f"cannot resume from resourceVersion {opts.since}: "
                                  f"{e.message}; watch again without --since") from e
            self._follow(sub)
        except _Done:
            pass
        finally:
            sub.close()

    def _follow(self, sub: EventSource) -> None:
        opts = self.options
        now = self.clock.monotonic()
        heard = quiet_from = now
        deadline = None if opts.timeout is None else now + opts.timeout
        while True:
            threshold = silence_threshold(self._heartbeat_period(), self._round_trip)
            wait = quiet_from + threshold - now
            if deadline is not None:
                wait = min(wait, deadline - now)
            msg = sub.recv(max(0.0, wait))
            now = self.clock.monotonic()
            if msg is None:
                if deadline is not None and now >= deadline:
                    return
                if now - quiet_from >= threshold:
                    self.notice(f"link silent for {now - heard:.0f} s, reconnecting…")
                    sub.close()
                    sub = self.subscribe()
                    self.reconnects += 1
                    with contextlib.suppress(Unavailable):  # tried again at the next line
                        self._catch_up(0)
                    now = quiet_from = self.clock.monotonic()
                continue
            heard = quiet_from = now
            before = self.printed
            with contextlib.suppress(Unavailable):  # the next heartbeat shows the gap again
                self._receive(msg)
            if deadline is not None and self.printed > before:
                deadline = self.clock.monotonic() + opts.timeout  # type: ignore[operator]

    @property
    def last(self) -> int | None:
        """The version to resume after (``--since``): every change up to it was shown
        (None until the registry answered)."""
        return None if self.mark is None else self.mark.replay_from

    def _receive(self, msg: Event | Heartbeat) -> None:
        assert self.mark is not None
        if msg.epoch != self.epoch:
            self._replaced()  # either way, not a message of the store being watched
            return
        if isinstance(msg, Heartbeat):
            self._heartbeat_heard()
            if self.mark.behind(msg.seq):
                self._catch_up(msg.seq)
            return
        link = self.mark.link(msg)
        if link is Link.GAP:  # other kinds' events, or lost ones
            self._catch_up(msg.seq)
        elif link is Link.NEXT:
            self._show([msg])

    def _heartbeat_heard(self) -> None:
        now = self.clock.monotonic()
        if self._heartbeat_at is not None:
            self._heartbeat_gaps = [*self._heartbeat_gaps[-(HEARTBEAT_SAMPLES - 1):],
                                    now - self._heartbeat_at]
        self._heartbeat_at = now

    def _heartbeat_period(self) -> float:
        """The configured period, or the registry's as observed when it is longer (a
        registry configured otherwise); the median ignores a gap across a stall."""
        gaps = sorted(self._heartbeat_gaps)
        observed = gaps[len(gaps) // 2] if len(gaps) >= HEARTBEAT_SAMPLES else 0.0
        return max(self.options.heartbeat_interval, observed)

    # -- replay --------------------------------------------------------------------------

    def _ping(self) -> dict[str, Any]:
        start = self.clock.monotonic()
        info = self.registry.ping()
        self._round_trip = self.clock.monotonic() - start
        return info

    def _catch_up(self, target: int, *, resuming: bool = False) -> None:
        """Show every change after ``last`` up to at least ``target`` (the registry's
        current version when that is 0), page by page. Changes compacted from the log
        meanwhile are said in one line, and the watch goes on from now (``resuming``: the
        :class:`Expired` is raised instead)."""
        assert self.mark is not None
        while True:
            start = self.clock.monotonic()
            try:
                page = self.registry.watch_since(self.mark.replay_from)
            except Expired:
                if resuming:
                    raise
                if self._replaced():
                    return
                missed = self.mark.replay_from
                self.mark = ChainMark(int(self._ping()["resourceVersion"]))
                self.notice(f"changes after resourceVersion {missed} are no longer in the "
                            f"registry's log: watching from resourceVersion {self.last}")
                return
            self._round_trip = self.clock.monotonic() - start
            if page.epoch and page.epoch != self.epoch:
                if self._replaced():
                    return
            self._show(page.events)
            self.mark = self.mark.complete_to(page.resource_version)
            if self.mark.seq >= target and len(page.events) < PAGE_HINT:
                return

    def _replaced(self) -> bool:
        """Whether the store was replaced (asked of the registry: a message of another
        epoch may be a stale one); if so, say it once and watch the new one from now."""
        info = self._ping()
        epoch = str(info["epoch"])
        if epoch == self.epoch:
            return False
        self.epoch = epoch
        self.mark = ChainMark(int(info["resourceVersion"]))
        self.notice(f"the registry store was replaced (new epoch): watching it from "
                    f"resourceVersion {self.last}; changes made in it before are not shown")
        return True

    def _show(self, events: Iterable[Event]) -> None:
        assert self.mark is not None
        opts = self.options
        prefix = None if opts.namespace is None else f"{opts.namespace}/"
        for e in events:
            if self.mark.link(e) is Link.DUPLICATE:
                continue
            self.mark = self.mark.after(e)  # a replay is the registry's chain: shown
            if e.kind == opts.kind and (prefix is None or e.key.startswith(prefix)):
                self.emit(e)
                self.printed += 1
            if opts.count is not None and self.printed >= opts.count and self.mark.finished:
                raise _Done


class ResumeFile:
    """Where each watch stopped, per registry endpoint: the store's epoch and, per
    ``kind/namespace`` scope, the last resourceVersion seen. A JSON file of the user's,
    written atomically (mode 0600); a file that cannot be read counts as empty and one
    that cannot be written is left as it was (resuming is a convenience)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def epoch(self, endpoint: str) -> str | None:
        entry = self._read().get(endpoint)
        epoch = entry.get("epoch") if isinstance(entry, dict) else None
        return epoch if isinstance(epoch, str) else None

    def position(self, endpoint: str, scope: str) -> tuple[str, int] | None:
        """(epoch, resourceVersion) where the last watch of ``scope`` stopped."""
        entry = self._read().get(endpoint)
        if not isinstance(entry, dict) or not isinstance(entry.get("epoch"), str):
            return None
        rv = (entry.get("positions") or {}).get(scope)
        if not isinstance(rv, int) or isinstance(rv, bool):
            return None
        return entry["epoch"], rv

    def save(self, endpoint: str, epoch: str, scope: str, resource_version: int) -> None:
        doc = self._read()
        entry = doc.get(endpoint)
        if not isinstance(entry, dict) or entry.get("epoch") != epoch:
            entry = {"epoch": epoch, "positions": {}}
        positions = entry.get("positions")
        if not isinstance(positions, dict):
            positions = entry["positions"] = {}
        positions[scope] = resource_version
        doc[endpoint] = entry
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            replace_atomically(self.path, json.dumps(doc).encode())
        except OSError:
            pass  # a position not saved costs a --since on the next pass, nothing else
