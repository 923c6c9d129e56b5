"""Fixtures shared by the integration tests: ``registry`` (start a real registry process
in the test's run dir) and ``cli`` (run ``ecsm-cli`` in-process against it). A module
that needs other settings defines its own fixture of the same name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import Processes
from tests.registry_fixtures import RunCli, StartRegistry, cli_runner, registry_starter


@pytest.fixture
def registry(processes: Processes) -> Iterator[StartRegistry]:
    yield from registry_starter(processes)


@pytest.fixture
def cli(processes: Processes, registry: StartRegistry,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    return cli_runner(processes, registry, monkeypatch, capsys)
