"""``vsoa.passwordFile``: a file of the operator's user, mode 0600, read by the service
controller on every pass and sent to ECSM; its content is part of the revision (a new
password rolls out) and never reaches the registry or a log; any other file is refused
with one line naming the fault."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from ecsm_actors.api import prepare, template_hash
from ecsm_actors.controllers.service import history, secret_file
from ecsm_actors.errors import TerminalError
from tests.unit.service_world import PASSWORD, World, causes, ecsm_vsoa, vsoa_service


def test_password_and_password_file_are_mutually_exclusive_and_the_file_path_is_absolute():
    assert causes(vsoa_service(password=PASSWORD, passwordFile="/etc/ea/web.vsoa")) == [
        "spec.template.vsoa.passwordFile: may not be set together with password (give the "
        "password inline or in a file, not both)"]
    assert causes(vsoa_service(passwordFile="web.vsoa")) == [
        "spec.template.vsoa.passwordFile: must be an absolute path"]
    assert prepare(vsoa_service(passwordFile="/etc/ea/web.vsoa"))["spec"]["template"][
        "vsoa"] == {"passwordFile": "/etc/ea/web.vsoa"}


def test_a_password_file_content_is_part_of_the_controller_s_revision():
    t = {"image": "app@1.0", "hostname": "web", "vsoa": {"passwordFile": "/s/web"}}
    plain = template_hash(t)
    one, two = template_hash(t, secret="one"), template_hash(t, secret="two")
    assert len({plain, one, two}) == 3 and one == template_hash(t, secret="one")


def secret(tmp_path: Path, content: str = PASSWORD + "\n", mode: int = 0o600) -> Path:
    path = tmp_path / "web.vsoa"
    path.write_text(content)
    path.chmod(mode)
    return path


def test_a_password_file_of_mode_0600_is_sent_to_ecsm_and_kept_out_of_the_registry(tmp_path,
                                                                                 caplog):
    caplog.set_level(logging.DEBUG)
    path = secret(tmp_path)
    w = World()
    w.apply(vsoa_service(passwordFile=str(path), port=0))
    w.settle("web")
    assert ecsm_vsoa(w) == [{"password": PASSWORD, "port": 0}]  # one trailing newline dropped
    stored = json.dumps(w.get("web"))
    assert PASSWORD not in stored and str(path) in stored
    assert not any(PASSWORD in r.getMessage() for r in caplog.records)
    assert w.condition("web", "Degraded")["status"] == "False"


def test_a_new_content_of_the_password_file_rolls_out_a_new_revision(tmp_path):
    path = secret(tmp_path, "first\n")
    w = World()
    w.apply(vsoa_service(passwordFile=str(path)))
    w.settle("web")
    first = w.get("web")["status"]["currentRevision"]
    path.write_text("second\n")
    w.settle("web")
    assert w.get("web")["status"]["currentRevision"] != first
    live = [svc for svc in w.state.services.values() if svc.factor > 0]
    assert [svc.image["vsoa"]["password"] for svc in live] == ["second"]
    obj = w.get("web")
    assert history.current_revision(obj) == obj["status"]["currentRevision"]


def refusal(path: str | Path, **kwargs: int) -> str:
    with pytest.raises(TerminalError) as info:
        secret_file.read_password_file(str(path), **kwargs)
    assert info.value.reason == "SecretFileRefused"
    return str(info.value)


def test_a_password_file_readable_by_others_is_refused_before_anything_reaches_ecsm(tmp_path):
    path = secret(tmp_path, mode=0o644)
    w = World()
    w.apply(vsoa_service(passwordFile=str(path)))
    with pytest.raises(TerminalError) as info:
        w.reconcile("web")
    assert str(info.value) == (f"spec.template.vsoa.passwordFile {path}: mode 0644 lets group "
                               f"or others access it: chmod 600 it")
    assert info.value.reason == "SecretFileRefused"
    assert w.state.services == {}  # nothing sent to ECSM


def test_every_unusable_password_file_is_refused_with_its_reason(tmp_path):
    assert refusal(tmp_path / "missing").endswith(": no such file")
    assert refusal(tmp_path).endswith(": not a regular file")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    assert refusal(fifo).endswith(": not a regular file")  # and no hang opening it
    assert refusal(secret(tmp_path, mode=0o640)).endswith(
        "mode 0640 lets group or others access it: chmod 600 it")
    assert "not by the operator's user" in refusal(secret(tmp_path), uid=os.geteuid() + 1)
    assert refusal(secret(tmp_path, "x" * 4097)).endswith(": larger than 4096 bytes")
    assert refusal(secret(tmp_path, "\n")).endswith(": empty")
    assert refusal(secret(tmp_path, "p" * 257)).endswith(
        ": the password is longer than 256 characters")
    bad = secret(tmp_path)
    bad.write_bytes(b"\xff\xfe")
    assert refusal(bad).endswith(": not UTF-8 text")


def test_a_password_file_reached_through_a_symlink_is_judged_by_its_target(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(secret(tmp_path, "pw\r\n"))
    assert secret_file.read_password_file(str(link)) == "pw"
