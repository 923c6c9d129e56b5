"""The VSOA password end to end: simulator + registry + ``controller service`` processes.

The password reaches ECSM (read back through the ECSM client), while the registry's
revision annotations, ``ecsm-cli get -o yaml`` and the processes' logs never hold it;
``--show-secrets`` prints it. A ``passwordFile`` of mode 0600 is read and sent; one of
mode 0644 is refused, the service Degraded with a one-line reason, nothing created.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecsm_actors.cli.ecsm_cli import cli
from ecsm_actors.controllers.service import history
from ecsm_actors.ecsm.clientset import Clientset
from tests import service_harness as h
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.timeout(90)

INLINE = "inline-Pa55word-7f3a"
IN_FILE = "file-Pa55word-91c2"


@pytest.fixture(scope="module")
def stack() -> Iterator[h.Stack]:
    run_dir = Path(tempfile.mkdtemp(prefix="ea-sec-", dir="/tmp"))
    run_dir.chmod(0o700)
    procs = Processes(run_dir)
    try:
        s = h.start_stack(procs, nodes=3, start_delay=0.2, ECSM_ACTORS_LOG_LEVEL="DEBUG")
        yield s
        s.close()
    finally:
        procs.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


def with_vsoa(name: str, **vsoa: str) -> dict:
    obj = h.service(name, replicas=1)
    obj["spec"]["template"]["vsoa"] = {**vsoa, "port": 0}
    return obj


def ecsm_passwords(stack: h.Stack, name: str) -> list[str]:
    """The VSOA password of each ECSM service of ``name``, read through the ECSM client."""
    with Clientset.from_config(h.config(stack.processes.run_dir)) as client:
        rows = client.services.list_all(name=f"default.{name}.")
        return [client.services.get(r.id).raw["image"]["vsoa"]["password"] for r in rows]


def cli_run(stack: h.Stack, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--run-dir", str(stack.processes.run_dir), *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def logs(stack: h.Stack) -> str:
    return "".join(p.read_text(errors="replace")
                   for p in (stack.processes.run_dir / "test-logs").glob("*.log"))


def test_an_inline_password_reaches_ecsm_and_is_shown_only_with_show_secrets(stack):
    stack.registry.apply(with_vsoa("inline", password=INLINE))
    wait_until(lambda: h.settled(stack.registry, "inline"), timeout=20, what="settled")
    assert ecsm_passwords(stack, "inline") == [INLINE]
    annotations = h.get(stack.registry, "inline")["metadata"]["annotations"]
    assert history.records(annotations) and INLINE not in json.dumps(annotations)
    shown = cli_run(stack, "get", "esvc", "inline", "-o", "yaml")
    assert INLINE not in shown and shown.count("<redacted>") == 2  # spec + annotation
    assert "password: <redacted>" in shown
    assert f"password: {INLINE}" in cli_run(stack, "get", "esvc", "inline", "-o", "yaml",
                                            "--show-secrets")
    assert INLINE not in cli_run(stack, "describe", "esvc", "inline")
    assert INLINE not in logs(stack)


def test_a_password_file_of_mode_0600_is_sent_and_one_of_0644_is_refused(stack, tmp_path):
    secret = tmp_path / "good.vsoa"
    secret.write_text(IN_FILE + "\n")
    secret.chmod(0o600)
    stack.registry.apply(with_vsoa("fromfile", passwordFile=str(secret)))
    wait_until(lambda: h.settled(stack.registry, "fromfile"), timeout=20, what="settled")
    assert ecsm_passwords(stack, "fromfile") == [IN_FILE]
    assert IN_FILE not in json.dumps(h.get(stack.registry, "fromfile"))
    assert IN_FILE not in cli_run(stack, "get", "esvc", "fromfile", "-o", "yaml")

    exposed = tmp_path / "exposed.vsoa"
    exposed.write_text(IN_FILE + "\n")
    exposed.chmod(0o644)
    stack.registry.apply(with_vsoa("exposed", passwordFile=str(exposed)))

    def degraded() -> dict | None:
        for c in (h.get(stack.registry, "exposed").get("status") or {}).get("conditions") or ():
            if c["type"] == "Degraded" and c["status"] == "True":
                return c
        return None

    condition = wait_until(degraded, timeout=20, what="Degraded")
    assert condition["reason"] == "SecretFileRefused"
    assert condition["message"] == (f"spec.template.vsoa.passwordFile {exposed}: mode 0644 "
                                    f"lets group or others access it: chmod 600 it")
    assert h.ecsm(stack.admin, "default.exposed.") == {}
    assert IN_FILE not in logs(stack)
