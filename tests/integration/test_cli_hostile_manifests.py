"""Hostile manifests given to ``ecsm-cli apply -f`` and ``ecsm-cli edit``: each gets ONE
line ``error: …`` and exit 1, in bounded time and memory, and nothing reaches the registry
(which keeps serving). The CLI runs in-process through its real entry point ``main``
against a real registry; ``-f /dev/zero`` goes through the launcher under a memory limit."""

from __future__ import annotations

import json
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import Processes
from tests.registry_samples import service

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


def billion_laughs() -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text


MANIFEST = yaml.safe_dump(service("web"), sort_keys=False)
HOSTILE = [
    ("nested-500-flow", "x: " + "[" * 500 + "]" * 500 + "\n", ":1:", "nested more than 64"),
    ("nested-500-block", "".join("  " * i + "k:\n" for i in range(500)) + "  " * 500 + "v\n",
     ":64:", "nested more than 64"),
    ("set", MANIFEST + "extra: !!set {a, b}\n", ":", "unsupported YAML tag !!set"),
    ("int-2-64", MANIFEST.replace("replicas: 2", "replicas: 18446744073709551616"), ":",
     "integer out of range"),
    ("int-6000-digits", MANIFEST.replace("replicas: 2", "replicas: " + "9" * 6000), ":",
     "integer out of range"),
    ("billion-laughs", billion_laughs(), ":", "aliases expand to more than 200000 values"),
    ("recursive-alias", "a: &a [*a]\n", ":1:", "an alias refers to a node that contains it"),
]


@pytest.mark.parametrize(("text", "where", "message"), [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])
def test_a_hostile_manifest_gets_one_error_line_and_the_registry_keeps_serving(
        cli: Any, tmp_path: Path, text: str, where: str, message: str) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    started = time.monotonic()
    code, out, err = cli("apply", "-f", str(path))
    assert time.monotonic() - started < 20
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and err.startswith(f"error: {path}{where}"), err[:300]
    assert message in err
    assert cli("apply", "-f", "-", stdin=MANIFEST)[:2] == (0, "ecsmservice/web created\n")


def test_a_yaml_date_stays_a_string_and_is_judged_where_the_api_wants_another_type(
        cli: Any, tmp_path: Path) -> None:
    doc = service("web")
    doc["metadata"]["annotations"] = {"released": "DATE"}
    doc["spec"]["deploymentStrategy"]["replicas"] = "DATE"
    path = tmp_path / "dated.yaml"
    path.write_text(yaml.safe_dump(doc).replace("DATE", "2024-01-01"))
    code, out, err = cli("apply", "-f", str(path))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert ('spec.deploymentStrategy.replicas: expected integer, got string "2024-01-01"'
            in err)
    path.write_text(path.read_text().replace("replicas: 2024-01-01", "replicas: 2"))
    assert cli("apply", "-f", str(path))[:2] == (0, "ecsmservice/web created\n")
    got = json.loads(cli("get", "esvc", "web", "-o", "json")[1])
    assert got["metadata"]["annotations"] == {"released": "2024-01-01"}


def test_an_edit_saved_as_an_alias_bomb_reopens_with_the_error(
        cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("apply", "-f", "-", stdin=MANIFEST)
    bomb, seen = tmp_path / "bomb.yaml", tmp_path / "second-opening.yaml"
    bomb.write_text(billion_laughs())
    editor = tmp_path / "editor.sh"
    editor.write_text(
        "#!/bin/sh\n"
        f"if [ -e {tmp_path}/once ]; then cp \"$1\" {seen}; : > \"$1\";\n"
        f"else touch {tmp_path}/once; cp {bomb} \"$1\"; fi\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    assert cli("edit", "esvc", "web")[:2] == (0, "Edit cancelled, no changes made.\n")
    assert "# error: the edited object:6:4: aliases expand to more than" in seen.read_text()


def _limit_memory() -> None:
    limit = 1 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_an_endless_input_is_cut_at_8_mib_by_the_launcher(processes: Processes) -> None:
    proc = subprocess.run([str(ROOT / "bin" / "ecsm-cli"), "apply", "-f", "/dev/zero"],
                          env=processes.env(), capture_output=True, text=True, timeout=60,
                          preexec_fn=_limit_memory)
    assert proc.returncode == 1
    assert proc.stderr == ("error: /dev/zero: larger than 8 MiB; split it into several "
                           "files (a manifest is read whole)\n")
