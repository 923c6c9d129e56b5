"""A forked process never hands out the object UIDs its parent will.

The store draws UIDs many at a time (:func:`ecsm_actors.store.semantics.new_uid`); the
registry runs in a process forked from the supervisor's zygote, so a pool filled before a
fork must not be shared by both sides of it.
"""

from __future__ import annotations

import os

import pytest

from ecsm_actors.store import semantics


@pytest.mark.timeout(10)
def test_a_forked_child_draws_uids_of_its_own() -> None:
    semantics.new_uid()  # the pool is filled: the next UIDs are drawn already
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first UID, to the parent, then out at once
        try:
            os.write(write, "\n".join(semantics.new_uid() for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        with os.fdopen(read, "rb") as pipe:
            child = set(pipe.read().decode().split("\n"))
    finally:
        os.waitpid(pid, 0)
    parent = {semantics.new_uid() for _ in range(8)}
    assert len(child) == 8 and not child & parent
