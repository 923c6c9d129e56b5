"""Fixtures shared by the integration tests: ``registry`` (start a real registry process
in the test's run dir), ``cli`` (run ``ecsm-cli`` in-process against it) and ``server``
(a registry of the test's process, not serving: the test runs its loop's turns and
waits). A module that needs other settings defines its own fixture of the same name."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsm_actors.config import load_config
from ecsm_actors.registry.server import RegistryServer
from tests.helpers import Processes
from tests.registry_fixtures import RunCli, StartRegistry, cli_runner, registry_starter


@pytest.fixture
def registry(processes: Processes) -> Iterator[StartRegistry]:
    yield from registry_starter(processes)


@pytest.fixture
def cli(processes: Processes, registry: StartRegistry,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    return cli_runner(processes, registry, monkeypatch, capsys)


@pytest.fixture
def server(run_dir: Path) -> Iterator[RegistryServer]:
    server = RegistryServer(load_config(None, environ={"ECSM_ACTORS_RUN_DIR": str(run_dir)}))
    try:
        yield server
    finally:
        server.close()
        gc.unfreeze()
