"""``ecsm-cli`` verbs whose meaning depends on the state they read, against a real registry
process: ``rollout undo`` whose write landed before its answer was lost reports the same
revision and never undoes itself; ``edit`` never writes unconditionally; a write past its
deadline says whether it was applied and how to check, a read how long it tried."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecsm_actors.api import template_hash
from ecsm_actors.controllers.service import history
from ecsm_actors.errors import Conflict
from ecsm_actors.registry.client import RegistryClient
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import RunCli, racing_editor
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]


def get(cli: RunCli, name: str = "web") -> dict[str, Any]:
    code, out, err = cli("get", "esvc", name, "-o", "json")
    assert code == 0, err
    return dict(json.loads(out))


def two_revisions(cli: RunCli) -> tuple[str, str]:
    """web at revision 2 (app@1.1) with revision 1 (app@1.0) recorded, as the service
    controller records them; returns both hashes."""
    cli("apply", "-f", "-", stdin=yaml.safe_dump(service("web", image="app@1.0")))
    first = get(cli)["spec"]["template"]
    cli("apply", "-f", "-", stdin=yaml.safe_dump(service("web", image="app@1.1")))
    obj = get(cli)
    second = obj["spec"]["template"]
    one, two = template_hash(first, name="web"), template_hash(second, name="web")
    obj["metadata"]["annotations"] = {history.annotation_key(one): history.encode(1, first),
                                      history.annotation_key(two): history.encode(2, second)}
    code, _, err = cli("apply", "-f", "-", stdin=yaml.safe_dump(obj))
    assert code == 0, err
    return one, two


def test_an_undo_whose_answer_was_lost_reports_its_revision_and_is_not_undone_again(
        cli, monkeypatch: pytest.MonkeyPatch) -> None:
    one, _ = two_revisions(cli)
    real = RegistryClient.update
    calls = []

    def lands_then_conflicts(self: RegistryClient, obj: dict[str, Any], **kw: Any) -> Any:
        calls.append(obj["spec"]["template"]["image"])
        if len(calls) == 1:  # applied; the answer lost; the retry found the new version
            real(self, obj, **kw)
            raise Conflict("the object has been modified")
        return real(self, obj, **kw)

    monkeypatch.setattr(RegistryClient, "update", lands_then_conflicts)
    assert cli("rollout", "undo", "web") == (
        0, f"ecsmservice/web rolled back to revision 1 ({one})\n", "")
    assert calls == ["app@1.0"]
    assert get(cli)["spec"]["template"]["image"] == "app@1.0"


def test_an_edit_without_its_resource_version_still_conflicts_with_a_concurrent_change(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("apply", "-f", "-", stdin=yaml.safe_dump(service("web")))
    seen = racing_editor(tmp_path, monkeypatch,
                         "-e 's/replicas: 2/replicas: 3/' -e '/resourceVersion:/d'")
    assert cli("edit", "esvc", "web")[:2] == (0, "ecsmservice/web edited\n")
    # not written over the concurrent change: re-opened, saving again is the user's choice
    assert "changed while you edited it" in seen.read_text()
    assert get(cli)["spec"]["deploymentStrategy"]["replicas"] == 3


def test_a_write_past_its_deadline_after_reaching_the_registry_names_the_check(
        cli, processes: Processes, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = processes.children[0]
    real = RegistryClient.batch

    def stalls_once_connected(self: RegistryClient, writes: Any, **kw: Any) -> Any:
        self.ping()  # connected: what is sent now reaches the registry, then it stalls
        processes.kill(registry, signal.SIGSTOP)
        return real(self, writes, **kw)

    monkeypatch.setattr(RegistryClient, "batch", stalls_once_connected)
    try:
        code, out, err = cli("--request-timeout", "1", "apply", "-f", "-",
                             stdin=yaml.safe_dump(service("web", namespace="prod")))
    finally:
        processes.kill(registry, signal.SIGCONT)
    assert (code, out) == (1, "")
    [line] = err.splitlines()
    assert line.startswith("error: registry at ") and " did not answer BATCH within " in line
    assert "it may or may not have been applied" in line
    assert line.endswith("; check with: ecsm-cli get esvc web -n prod")
    # it was in flight: the check named finds it once the registry runs again
    assert wait_until(lambda: cli("get", "esvc", "web", "-n", "prod")[0] == 0)


def test_a_write_that_never_reached_the_registry_says_so_and_a_read_how_long_it_tried(
        cli, processes: Processes) -> None:
    registry = processes.children[0]
    processes.kill(registry, signal.SIGSTOP)
    try:
        code, out, err = cli("--request-timeout", "1", "apply", "-f", "-",
                             stdin=yaml.safe_dump(service("web")))
        assert (code, out) == (1, "")
        [line] = err.splitlines()
        assert " did not answer BATCH within " in line
        assert line.endswith("not applied: the request never reached the registry; run the "
                             "command again")
        code, out, err = cli("--request-timeout", "1", "get", "esvc")
        assert (code, out) == (1, "")
        [line] = err.splitlines()
        assert re.fullmatch(r"error: registry at \S+ did not answer LIST within 1\.\ds "
                            r"\(\d+ attempts?.*\)", line), line
    finally:
        processes.kill(registry, signal.SIGCONT)
