"""Human-readable output escapes control, bidi and invisible characters: a string from the
registry or from ECSM cannot add a line, move the cursor, ring the bell or reverse the
text of a ``describe`` or a table; the error line stays one line."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace as NS
from typing import Any

import click
import pytest

from ecsm_actors.cli import desired_views, platform_describe
from ecsm_actors.cli.ecsm_cli import main
from ecsm_actors.cli.entry import run
from ecsm_actors.cli.printers import escape, render_table
from ecsm_actors.errors import EcsmApiError
from tests.registry_samples import hpa, service

HOSTILE = "a\nfake: line\rover\x07bell\x1b[2Jclear\u202eesrever\x9bcsi\u2066iso\u200bzw\ufeff\x00"
SHOWN = ("a\\nfake: line\\rover\\x07bell\\x1b[2Jclear\\u202eesrever\\x9bcsi\\u2066iso\\u200bzw"
         "\\ufeff\\x00")
RAW = set("\n\r\x07\x1b\u202e\x9b\u2066\u200b\ufeff\x00")


def clean(text: str) -> bool:
    """No raw hostile character (a newline only between lines of the output)."""
    return not any(c in RAW for c in text.replace("\n", ""))


def test_escape_writes_every_hostile_character_visibly_and_is_idempotent() -> None:
    assert escape(HOSTILE) == SHOWN
    assert escape(SHOWN) == SHOWN
    assert escape("café ünïcode 日本語 \\n") == "café ünïcode 日本語 \\n"


def test_a_table_cell_cannot_add_a_line_or_a_control_sequence() -> None:
    text = render_table(["Name", "Message"], [["web", HOSTILE]])
    assert text.splitlines()[1] == f"web    {SHOWN}"
    assert len(text.splitlines()) == 2 and clean(text)


def test_describe_esvc_escapes_annotations_labels_and_condition_messages() -> None:
    obj = service("web", annotations={"note": HOSTILE, "ecsm.sh/x": "ok"})
    obj["status"] = {"conditions": [{"type": "Degraded", "status": "True",
                                     "reason": "EcsmError", "message": HOSTILE}]}
    text = desired_views.describe_service(obj)
    plain = desired_views.describe_service(service("web", annotations={"note": "x",
                                                                        "ecsm.sh/x": "ok"}))
    assert clean(text)
    assert "note=" + SHOWN[:60] + "…" in text
    assert SHOWN in text  # the condition message, whole
    assert len(text.splitlines()) == len(plain.splitlines()) + 2  # conditions header + row


def test_describe_hpa_escapes_scale_decisions_and_annotations() -> None:
    obj = hpa("web")
    obj["metadata"]["annotations"] = {"note": "\u202etxt"}
    obj["status"] = {"scaleEvents": [{"timestamp": "2026-01-01T00:00:00Z", "replicaChange": 1,
                                      "reason": HOSTILE}]}
    text = desired_views.describe_hpa(obj)
    assert clean(text) and SHOWN in text and "note=\\u202etxt" in text


class FakeServices:
    def __init__(self, svc: Any) -> None:
        self.svc = svc

    def list_all(self) -> list[Any]:
        return [NS(id=self.svc.id, name=self.svc.name)]

    def get(self, _id: str) -> Any:
        return self.svc


def test_platform_describe_service_escapes_what_ecsm_sends(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    svc = NS(id="s1", name="web", status=HOSTILE, healthy=True, created_time="t",
             updated_time="t", policy="\x1b]0;title\x07", factor=1, instance_online=1,
             instance_active=1, image=NS(ref="app@1.0", pull_policy="Always",
                                         auto_upgrade=HOSTILE),
             node_list=[NS(node_name=HOSTILE, address="10.0.0.1", node_id="n1")])
    containers = [NS(name="c1", status=HOSTILE, restart_cnt=0, node_name="n", id="c")]
    cs = NS(services=FakeServices(svc), containers=NS(
        list_by_service=lambda *_a: NS(items=containers)))

    @contextmanager
    def connect(_obj: Any) -> Any:
        yield cs

    monkeypatch.setattr(platform_describe, "connect", connect)
    assert main(["describe", "service", "web"]) == 0
    out = capsys.readouterr().out
    assert clean(out)
    assert "Deploy Status:  " + SHOWN in out and "\\x1b]0;title\\x07" in out


def test_the_error_line_stays_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    @click.command()
    def fails() -> None:
        raise EcsmApiError(status=500, message=HOSTILE)

    assert run(click.Group(commands={"fails": fails}), "ecsm-cli", ["fails"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: ecsm api error (status 500): {SHOWN}\n"
