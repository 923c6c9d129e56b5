"""A wait for the log's sync ends in the sync's error when collecting its completion fails
(``io_getevents`` refused, as it refuses a forked child the parent's AIO context): it
raises at once rather than waiting on the eventfd for a completion that never comes."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from ecsm_actors.store.log_sync import LogSync

pytestmark = pytest.mark.timeout(30)


class UncollectableDisk:
    """Stands in for the kernel's asynchronous syncs: each is taken, none signals the
    eventfd, and collecting them fails with EINVAL."""

    def submit(self, ticket: int) -> bool:
        return True

    def completed(self, wait: bool = False) -> list[tuple[int, int]]:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    def close(self) -> None:
        pass


def test_a_wait_whose_completions_cannot_be_collected_raises_instead_of_waiting_forever(
        tmp_path: Path) -> None:
    fd = os.open(tmp_path / "log", os.O_RDWR | os.O_CREAT, 0o600)
    syncs = LogSync(fd)
    syncs._aio = UncollectableDisk()  # type: ignore[assignment]
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            syncs.wait(ticket)
        except BaseException as e:  # noqa: BLE001 - what the wait ended in, checked below
            raised.append(e)

    try:
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
    finally:
        syncs.close()
        os.close(fd)
