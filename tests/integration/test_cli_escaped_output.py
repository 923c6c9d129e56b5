"""Strings stored in the registry reach the terminal escaped in ``describe`` and in tables,
and exactly in ``-o yaml|json`` (the CLI runs in-process through its real entry point
``main`` against a real registry)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import yaml

from ecsm_actors.cli.ecsm_cli import main
from tests.helpers import Processes
from tests.registry_fixtures import StartRegistry
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(60)
HOSTILE = "line\nInjected: yes\r\x07\x1b[31mred\u202etxet\x85"
SHOWN = "line\\nInjected: yes\\r\\x07\\x1b[31mred\\u202etxet\\x85"


@pytest.fixture
def cli(processes: Processes, registry: StartRegistry, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Any:
    for var in [v for v in os.environ if v.startswith("ECSM_ACTORS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("ECSM_ACTORS_RUN_DIR", str(processes.run_dir))
    _, client = registry()

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    run.client = client  # type: ignore[attr-defined]
    return run


def test_describe_escapes_an_annotation_and_yaml_and_json_keep_it_exact(cli: Any) -> None:
    cli.client.create(service("web", annotations={"note": HOSTILE}))
    code, out, _ = cli("describe", "esvc", "web")
    assert code == 0
    assert f"note={SHOWN}" in out
    assert not any(c in out for c in "\r\x07\x1b\u202e\x85")
    assert "\nInjected: yes" not in out
    for fmt, load in (("yaml", yaml.safe_load), ("json", json.loads)):
        code, out, _ = cli("get", "esvc", "web", "-o", fmt)
        assert load(out)["metadata"]["annotations"] == {"note": HOSTILE}
