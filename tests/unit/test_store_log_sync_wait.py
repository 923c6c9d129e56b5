"""Syncs of the log count in the order they were submitted (a writeback error is reported
to one of the syncs running on a file: a later one done first proves nothing until the
earlier one is collected), and a wait for the log's sync ends in the sync's error when
collecting its completion fails (``io_getevents`` refused, as it refuses a forked child
the parent's AIO context): it raises at once rather than waiting on the eventfd for a
completion that never comes."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from ecsm_actors.store.log_sync import LogSync

pytestmark = pytest.mark.timeout(30)

_Disk = TypeVar("_Disk")


@pytest.fixture
def log(tmp_path: Path) -> Iterator[tuple[int, LogSync]]:
    """A log file's descriptor and its syncs, both closed after the test."""
    fd = os.open(tmp_path / "log", os.O_RDWR | os.O_CREAT, 0o600)
    syncs = LogSync(fd)
    try:
        yield fd, syncs
    finally:
        syncs.close()
        os.close(fd)


def faked(syncs: LogSync, disk: _Disk) -> _Disk:
    """``disk`` in place of the kernel's asynchronous syncs of ``syncs`` (the real AIO
    context let go)."""
    if syncs._aio is not None:
        syncs._aio.close()
    syncs._aio = disk  # type: ignore[assignment]
    return disk


class FakeDisk:
    """Stands in for the kernel's asynchronous syncs: each is taken, none signals the
    eventfd; collecting them hands back ``done`` (ticket, result) in the order the test
    gives, or fails with ``refusal`` (an errno) when set."""

    def __init__(self, refusal: int | None = None) -> None:
        self.done: list[tuple[int, int]] = []
        self.refusal = refusal

    def submit(self, ticket: int) -> bool:
        return True

    def completed(self, wait: bool = False) -> list[tuple[int, int]]:
        if self.refusal is not None:
            raise OSError(self.refusal, os.strerror(self.refusal))
        done, self.done = self.done, []
        return done

    def close(self) -> None:
        pass


def test_a_wait_whose_completions_cannot_be_collected_raises_instead_of_waiting_forever(
        log: tuple[int, LogSync]) -> None:
    fd, syncs = log
    faked(syncs, FakeDisk(refusal=errno.EINVAL))
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            syncs.wait(ticket)
        except BaseException as e:  # noqa: BLE001 - what the wait ended in, checked below
            raised.append(e)

    os.pwrite(fd, b"record", 0)
    ticket = syncs.request()  # submitted, in flight
    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(5)
    hung = waiter.is_alive()
    if hung:  # let it go: a count on the eventfd ends its poll
        os.eventfd_write(syncs.ready, 1)
        waiter.join(5)
    assert not hung, "the wait sat on the eventfd after io_getevents failed"
    assert len(raised) == 1 and isinstance(raised[0], OSError)
    assert raised[0].errno == errno.EINVAL and syncs.synced < ticket


def test_a_later_sync_done_first_marks_nothing_durable_until_the_earlier_one_is_collected(
        log: tuple[int, LogSync]) -> None:
    _, syncs = log
    disk = faked(syncs, FakeDisk())
    first, second = syncs.request(), syncs.request()  # two syncs in flight
    disk.done = [(second, 0)]  # the later one succeeds first
    assert syncs.check() == 0, "the later sync's success counted before the earlier's"
    disk.done = [(first, -errno.EIO)]  # the earlier one got the disk's error
    with pytest.raises(OSError):
        syncs.check()
    assert syncs.synced == 0


def test_syncs_done_out_of_order_count_once_every_earlier_one_is_done(
        log: tuple[int, LogSync]) -> None:
    _, syncs = log
    disk = faked(syncs, FakeDisk())
    first, second, third = syncs.request(), syncs.request(), syncs.request()
    disk.done = [(third, 0), (second, 0)]
    assert syncs.check() == 0
    disk.done = [(first, 0)]
    assert syncs.check() == third


def test_each_sync_in_flight_runs_on_a_file_description_of_its_own(
        log: tuple[int, LogSync]) -> None:
    fd, syncs = log
    aio = syncs._aio
    if aio is None:
        pytest.skip("no asynchronous fdatasync on this kernel")
    used: list[int] = []
    submit = aio.submit

    def recording(ticket: int) -> bool | None:
        submitted = submit(ticket)
        used.append(aio._iocb.fildes)
        return submitted

    aio.submit = recording  # type: ignore[method-assign]
    os.pwrite(fd, b"first", 0)
    syncs.request()
    os.pwrite(fd, b"second", 8)
    second = syncs.request()  # the first not collected yet: both in flight
    assert len(used) == 2 and len(set(used)) == 2 and fd not in used
    # Descriptions of their own (a dup shares its offset; these do not):
    os.lseek(used[0], 5, os.SEEK_SET)
    assert os.lseek(used[1], 0, os.SEEK_CUR) != 5 and os.lseek(fd, 0, os.SEEK_CUR) != 5
    syncs.wait(second)
    assert syncs.synced == second
