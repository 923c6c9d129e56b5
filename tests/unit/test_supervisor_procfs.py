"""The supervisor reads its children's figures from /proc: the same figures psutil gives
(RSS, its file-backed share, CPU seconds, zombie or not, the environment), and None for
a process that is gone. Read on this test's own process."""

from __future__ import annotations

import os

import psutil

from ecsm_actors.supervisor import procfs

GONE = 2**22 + 1  # above the kernel's largest pid


def test_the_usage_of_a_process_is_what_psutil_reads() -> None:
    me = psutil.Process()
    usage = procfs.usage(os.getpid())
    memory, times = me.memory_info(), me.cpu_times()
    assert usage is not None
    assert abs(usage.rss - memory.rss) < 4 << 20  # sampled a moment apart
    assert 0 < usage.shared <= usage.rss
    assert abs(usage.cpu - (times.user + times.system)) < 0.5


def test_a_running_process_is_alive_and_its_environment_readable() -> None:
    assert procfs.state(os.getpid()) == "R"
    assert procfs.alive(os.getpid())
    env = procfs.environ(os.getpid())
    assert env is not None and env.get("PATH") == psutil.Process().environ().get("PATH")


def test_a_process_that_is_gone_has_no_figures() -> None:
    assert procfs.usage(GONE) is None
    assert procfs.state(GONE) is None
    assert not procfs.alive(GONE)
    assert procfs.environ(GONE) is None
