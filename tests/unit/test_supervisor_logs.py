"""Child logs stay bounded while the child runs (copy-and-truncate rotation)."""

from __future__ import annotations

import os
from pathlib import Path

from ecsm_actors.supervisor.process import rotate_running_log


def test_a_running_childs_log_past_the_limit_moves_to_dot_one_and_starts_empty(
        tmp_path: Path) -> None:
    log = tmp_path / "registry.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)  # as the child holds it
    try:
        os.write(fd, b"old line\n" * 200)
        assert rotate_running_log(log, limit=1000)
        os.write(fd, b"new line\n")
    finally:
        os.close(fd)
    assert (tmp_path / "registry.log.1").read_bytes() == b"old line\n" * 200
    assert log.read_bytes() == b"new line\n"  # the child's next write lands at the new end


def test_a_log_under_the_limit_is_left_alone(tmp_path: Path) -> None:
    log = tmp_path / "registry.log"
    log.write_bytes(b"short\n")
    assert not rotate_running_log(log, limit=1000)
    assert log.read_bytes() == b"short\n"
    assert not (tmp_path / "registry.log.1").exists()


def test_a_missing_log_is_not_an_error(tmp_path: Path) -> None:
    assert not rotate_running_log(tmp_path / "absent.log", limit=10)
