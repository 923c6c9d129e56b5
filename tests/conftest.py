"""Fixtures shared by every test: a short run directory, a process reaper, etcd servers
(from :mod:`tests.etcd_cluster`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pluggy
import pytest

from tests.etcd_cluster import (  # noqa: F401 - fixtures: real etcd servers, key prefixes
    etcd_cluster,
    etcd_cluster_module,
    etcd_prefix,
    etcd_server,
)
from tests.helpers import Processes


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A fresh run directory with a short path (ipc:// paths are limited to ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="ea-", dir="/tmp"))
    path.chmod(0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def processes(run_dir: Path, request: pytest.FixtureRequest) -> Iterator[Processes]:
    """Starts project processes for the test; kills their process groups afterwards and
    prints their logs when the test failed."""
    procs = Processes(run_dir)
    yield procs
    procs.cleanup()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(procs.logs())


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
