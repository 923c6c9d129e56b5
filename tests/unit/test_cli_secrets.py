"""``ecsm-cli`` never prints a VSOA password unless asked (``get -o yaml|json
--show-secrets``): get, describe, watch, rollout history, the edit buffer and errors show
``<redacted>``; an edit that leaves ``<redacted>`` keeps the stored password; ``rollout
undo`` keeps the password the object has now."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import ecsm_actors.cli.ecsm_cli as ecsm_cli  # first: the verb modules attach to its groups
from ecsm_actors.api.secrets import REDACTED
from ecsm_actors.cli import desired, desired_views, rollout
from ecsm_actors.cli.editing import edit_object
from ecsm_actors.cli.redaction import redact
from ecsm_actors.controllers.service import history
from ecsm_actors.protocol import Event, EventType
from tests.unit.service_world import World, esvc

PASSWORD = "c0rrect-h0rse-battery"


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    w = World()
    monkeypatch.setattr(desired, "registry_client", lambda ctx: w.registry)
    monkeypatch.setattr(rollout, "registry_client", lambda ctx: w.registry)
    monkeypatch.setattr(rollout, "_ecsm_revisions", lambda ctx, ns, name: "ECSM not asked")
    return w


def web(image: str = "app@1.0", **vsoa: Any) -> dict[str, Any]:
    return esvc("web", image=image, replicas=1, vsoa=vsoa or {"password": PASSWORD})


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(ecsm_cli.cli, list(args))
    return result.exit_code, result.output


def test_get_yaml_and_json_redact_the_password_and_its_copy_in_the_annotations(world):
    world.apply(web())
    world.settle("web")
    code, out = run("get", "esvc", "web", "-o", "yaml")
    assert code == 0 and PASSWORD not in out
    doc = yaml.safe_load(out)
    assert doc["spec"]["template"]["vsoa"]["password"] == REDACTED
    assert any(history.PREFIX in k for k in doc["metadata"]["annotations"])
    code, out = run("get", "esvc", "web", "-o", "json")
    assert code == 0 and PASSWORD not in out and REDACTED in out


def test_show_secrets_prints_the_password_with_yaml_or_json_only(world):
    world.apply(web())
    code, out = run("get", "esvc", "web", "-o", "yaml", "--show-secrets")
    assert code == 0 and yaml.safe_load(out)["spec"]["template"]["vsoa"]["password"] == PASSWORD
    code, out = run("get", "esvc", "web", "-o", "json", "--show-secrets")
    assert code == 0 and json.loads(out)["spec"]["template"]["vsoa"]["password"] == PASSWORD
    code, out = run("get", "esvc", "web", "--show-secrets")
    assert code == 2 and "--show-secrets goes with -o yaml or -o json" in out


def test_describe_says_a_password_is_set_and_never_shows_it(world):
    world.apply(web())
    world.settle("web")
    code, out = run("describe", "esvc", "web")
    assert code == 0 and PASSWORD not in out
    assert re.search(r"\n  VSOA password: +<redacted>\n", out)
    text = desired_views.describe_service(world.get("web"))  # even given the clear object
    assert PASSWORD not in text
    world.apply(web(passwordFile="/etc/ecsm-actors/secrets/web.vsoa"))
    assert "from file /etc/ecsm-actors/secrets/web.vsoa" in run("describe", "esvc", "web")[1]


def test_redaction_covers_annotations_written_in_clear_by_an_older_version():
    clear = json.dumps({"revision": 1, "template": {"image": "a@1",
                                                    "vsoa": {"password": PASSWORD}}})
    obj = {"kind": "ECSMService", "metadata": {"annotations": {history.PREFIX + "x": clear}},
           "spec": {"template": {"image": "a@1", "vsoa": {"password": PASSWORD}}}}
    shown = redact(obj)
    assert PASSWORD not in json.dumps(shown) and PASSWORD in json.dumps(obj)  # input untouched


def test_the_watch_output_redacts_the_object(world):
    obj = world.apply(web())
    event = Event(epoch="e", seq=1, type=EventType.ADDED, kind="ECSMService",
                  key="default/web", resource_version=1, object=obj)
    for fmt in ("json", "yaml"):
        line = desired._event_line(event, fmt)
        assert PASSWORD not in line and REDACTED in line


def test_rollout_history_of_a_revision_shows_the_placeholder(world):
    world.apply(web())
    world.settle("web")
    code, out = run("rollout", "history", "web", "--revision", "1")
    assert code == 0, out
    assert PASSWORD not in out and yaml.safe_load(out)["template"]["vsoa"]["password"] == REDACTED


def test_undo_returns_to_the_previous_template_keeping_the_current_password(world):
    world.apply(web("app@1.0"))
    world.settle("web")
    first = world.get("web")["status"]["currentRevision"]
    world.apply(web("app@1.1"))
    world.settle("web")
    code, out = run("rollout", "undo", "web")
    assert (code, out) == (0, f"ecsmservice/web rolled back to revision 1 ({first})\n")
    template = world.get("web")["spec"]["template"]
    assert template["image"] == "app@1.0" and template["vsoa"]["password"] == PASSWORD
    world.settle("web")
    assert world.get("web")["status"]["currentRevision"] == first


def test_undo_after_a_password_change_keeps_the_new_password_and_says_so(world):
    world.apply(web("app@1.0"))
    world.settle("web")
    world.apply(web("app@1.1", password="rotated-password"))
    world.settle("web")
    code, out = run("rollout", "undo", "web")
    assert code == 0 and out == ("ecsmservice/web rolled back to the template of revision 1, "
                                 "keeping the current VSOA password (revision 1 had another "
                                 "one)\n")
    template = world.get("web")["spec"]["template"]
    assert template["image"] == "app@1.0" and template["vsoa"]["password"] == "rotated-password"


def test_undo_refuses_what_only_a_password_could_restore(world):
    world.apply(web())
    world.settle("web")
    world.apply(web(password="rotated-password"))
    world.settle("web")
    code, out = run("rollout", "undo", "web")
    assert code == 1 and out.strip() == (
        "Error: revision 1 differs from the current template only by its VSOA password, which "
        "revisions do not keep: re-apply the template with that password (ecsm-cli apply -f)")
    world.apply(esvc("web", image="app@1.1", replicas=1))  # no password any more
    world.settle("web")
    code, out = run("rollout", "undo", "web", "--to-revision", "2")
    assert code == 1 and "revision 2 had a VSOA password, which revisions do not keep, and " \
        "the object has no inline one now" in out
    assert world.get("web")["spec"]["template"].get("vsoa") is None


def test_undo_cannot_bring_back_an_old_content_of_a_password_file(world, tmp_path: Path):
    path = tmp_path / "web.vsoa"
    path.write_text("first\n")
    path.chmod(0o600)
    world.apply(web(passwordFile=str(path)))
    world.settle("web")
    path.write_text("second\n")
    world.settle("web")
    code, out = run("rollout", "history", "web")
    assert code == 0 and [line.split()[-1] for line in out.splitlines()[2:4]] == ["-", "yes"]
    code, out = run("rollout", "undo", "web")
    assert code == 1 and out.strip() == (
        f"Error: revision 1 differs from the current template only by the content of its "
        f"passwordFile {path}: write that password back into the file")


def editor(monkeypatch: pytest.MonkeyPatch, change: Any) -> list[str]:
    """Replace $EDITOR by ``change`` (buffer → saved text); returns the buffers shown."""
    shown: list[str] = []

    def edit(text: str, **_: Any) -> str:
        shown.append(text)
        return change(text)

    monkeypatch.setattr("click.edit", edit)
    return shown


def test_an_edit_shows_the_placeholder_and_keeps_the_stored_password_when_left_alone(
        world, monkeypatch):
    world.apply(web())
    world.settle("web")
    shown = editor(monkeypatch, lambda t: t.replace("image: app@1.0", "image: app@1.1"))
    edit_object(world.registry, "ECSMService", "default", "web")
    assert PASSWORD not in shown[0] and f"password: {REDACTED}\n" in shown[0]
    template = world.get("web")["spec"]["template"]
    assert template["image"] == "app@1.1" and template["vsoa"]["password"] == PASSWORD


def test_an_edit_that_types_a_new_password_sets_it_and_one_that_deletes_it_removes_it(
        world, monkeypatch):
    world.apply(web())
    editor(monkeypatch, lambda t: t.replace(REDACTED, "typed-anew"))
    edit_object(world.registry, "ECSMService", "default", "web")
    assert world.get("web")["spec"]["template"]["vsoa"]["password"] == "typed-anew"
    editor(monkeypatch, lambda t: t.replace(f"      password: {REDACTED}\n",
                                            "      port: 7000\n"))
    edit_object(world.registry, "ECSMService", "default", "web")
    assert world.get("web")["spec"]["template"]["vsoa"] == {"port": 7000}


def test_an_invalid_edit_reopens_without_the_password(world, monkeypatch, tmp_path: Path):
    world.apply(web())
    saves = iter([lambda t: t.replace("replicas: 1\n", "replicas: -1\n"),
                  lambda t: t.replace("replicas: -1\n", "replicas: 2\n")])
    shown = editor(monkeypatch, lambda t: next(saves)(t))
    edit_object(world.registry, "ECSMService", "default", "web")
    assert len(shown) == 2 and "# error:" in shown[1]
    assert not any(PASSWORD in s for s in shown)
    assert world.get("web")["spec"]["template"]["vsoa"]["password"] == PASSWORD
