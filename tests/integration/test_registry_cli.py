"""``ecsm-cli`` desired-state verbs against a real registry process (the CLI runs
in-process through its real entry point ``main``; one case goes through the launcher)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import Processes
from tests.registry_fixtures import racing_editor
from tests.registry_samples import hpa, service

ROOT = Path(__file__).resolve().parents[2]


def write_manifest(path: Path, *docs: dict) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def test_apply_reports_created_configured_unchanged(cli, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "app.yaml", service("web"), hpa("web"))
    assert cli("apply", "-f", str(manifest)) == (
        0, "ecsmservice/web created\necsmhpa/web created\n", "")
    assert cli("apply", "-f", str(manifest))[1] == (
        "ecsmservice/web unchanged\necsmhpa/web unchanged\n")
    write_manifest(manifest, service("web", replicas=4))
    assert cli("apply", "-f", str(manifest))[1] == "ecsmservice/web configured\n"


def test_apply_reads_a_directory_and_stdin(cli, tmp_path: Path) -> None:
    write_manifest(tmp_path / "a.yaml", service("a"))
    (tmp_path / "b.json").write_text(json.dumps(service("b")))
    (tmp_path / "notes.txt").write_text("ignored")
    assert cli("apply", "-f", str(tmp_path))[1] == (
        "ecsmservice/a created\necsmservice/b created\n")
    code, out, _ = cli("apply", "-f", "-", stdin=yaml.safe_dump(service("c")))
    assert (code, out) == (0, "ecsmservice/c created\n")


def test_an_invalid_object_fails_with_its_field_causes_and_the_others_apply(
        cli, tmp_path: Path) -> None:
    bad = service("bad")
    bad["spec"]["bogus"] = 1
    manifest = write_manifest(tmp_path / "m.yaml", bad, service("good"))
    code, out, err = cli("apply", "-f", str(manifest))
    assert code == 1
    assert out == "ecsmservice/good created\n"
    assert err.startswith("error: ecsmservice/bad:") and "spec.bogus" in err
    assert len(err.strip().splitlines()) == 1


def test_a_yaml_syntax_error_names_the_file_and_line(cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: ecsm.sh/v1\nkind: ECSMService\nmetadata: : x\n")
    code, out, err = cli("apply", "-f", str(broken))
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {broken}:3:") and "invalid YAML" in err


def test_get_lists_in_every_format_and_describe_shows_details(cli, tmp_path: Path) -> None:
    cli("apply", "-f", str(write_manifest(tmp_path / "m.yaml", service("web"), hpa("web"),
                                          service("api", namespace="prod"))))
    code, out, _ = cli("get", "esvc")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "STRATEGY",
                                "IMAGE", "AGE"]
    assert lines[1].split()[:6] == ["web", "0/2", "0", "0", "Dynamic", "app@1.0#sylixos"]
    assert len(lines) == 2
    everywhere = cli("get", "ecsmservices", "-A", "-o", "wide")[1].splitlines()
    assert everywhere[0].split()[0] == "NAMESPACE" and "ECSM-IDS" in everywhere[0]
    assert [line.split()[:2] for line in everywhere[1:]] == [["default", "web"],
                                                            ["prod", "api"]]
    assert "cpu: <unknown>/60%" in cli("get", "hpa")[1]
    one = json.loads(cli("get", "ecsmservice", "api", "-n", "prod", "-o", "json")[1])
    assert one["metadata"]["namespace"] == "prod"
    listed = yaml.safe_load(cli("get", "hpa", "-o", "yaml")[1])
    assert [i["metadata"]["name"] for i in listed["items"]] == ["web"]
    described = cli("describe", "esvc", "web")[1]
    assert "Conditions:" in described and "app@1.0#sylixos" in described
    assert "Last scale decisions" in cli("describe", "hpa", "web")[1]


def test_get_of_a_missing_object_is_one_error_line_and_exit_1(cli) -> None:
    code, out, err = cli("get", "esvc", "ghost")
    assert (code, out) == (1, "")
    assert err == "error: ECSMService default/ghost not found\n"


def test_usage_errors_exit_2(cli) -> None:
    assert cli("delete")[0] == 2
    assert cli("get", "esvc", "-o", "xml")[0] == 2


def test_delete_by_name_and_by_file(cli, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", service("a"), service("b"))
    cli("apply", "-f", str(manifest))
    assert cli("delete", "esvc", "a") == (0, "ecsmservice/a deleted\n", "")
    code, out, err = cli("delete", "-f", str(manifest))
    assert (code, out) == (1, "ecsmservice/b deleted\n")
    assert "ecsmservice/a" in err and "not found" in err
    assert cli("delete", "esvc", "a", "--ignore-not-found")[0] == 0


def test_delete_with_a_finalizer_reports_the_wait(cli) -> None:
    cli("create", "-f", "-", stdin=yaml.safe_dump(service("a", finalizers=["ecsm.sh/x"])))
    assert cli("delete", "esvc", "a")[1] == (
        "ecsmservice/a deletion requested (waiting for finalizers: ecsm.sh/x)\n")


def test_edit_writes_the_saved_change(cli, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cli("apply", "-f", "-", stdin=yaml.safe_dump(service("web")))
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/replicas: 2/replicas: 3/' \"$1\"\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    assert cli("edit", "esvc", "web") == (0, "ecsmservice/web edited\n", "")
    got = json.loads(cli("get", "esvc", "web", "-o", "json")[1])
    assert got["spec"]["deploymentStrategy"]["replicas"] == 3


def test_an_invalid_edit_reopens_the_editor_with_the_error(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("apply", "-f", "-", stdin=yaml.safe_dump(service("web")))
    seen = tmp_path / "second-opening.yaml"
    editor = tmp_path / "editor.sh"
    editor.write_text(
        "#!/bin/sh\n"
        f"if [ -e {tmp_path}/once ]; then cp \"$1\" {seen};\n"
        "  sed -i 's/replicas: -1/replicas: 5/' \"$1\"\n"
        f"else touch {tmp_path}/once; sed -i 's/replicas: 2/replicas: -1/' \"$1\"; fi\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    assert cli("edit", "esvc", "web")[:2] == (0, "ecsmservice/web edited\n")
    reopened = seen.read_text()
    assert "# error:" in reopened and "replicas" in reopened
    assert "replicas: -1" in reopened  # the user's text was kept
    got = json.loads(cli("get", "esvc", "web", "-o", "json")[1])
    assert got["spec"]["deploymentStrategy"]["replicas"] == 5


def test_watch_replays_since_a_version_and_follows_new_changes(cli, tmp_path: Path) -> None:
    cli("apply", "-f", str(write_manifest(tmp_path / "m.yaml", service("a"), hpa("a"),
                                          service("b"))))
    code, out, _ = cli("watch", "esvc", "--since", "0", "--count", "2")
    assert code == 0
    assert [line.split()[:3] for line in out.splitlines()] == [
        ["1", "ADDED", "ecsmservice/a"], ["3", "ADDED", "ecsmservice/b"]]
    code, out, _ = cli("watch", "hpa", "--since", "0", "-o", "json", "--timeout", "0.3")
    assert [json.loads(line)["type"] for line in out.splitlines()] == ["ADDED"]


def test_the_launcher_exits_1_on_a_registry_error(processes: Processes, cli) -> None:
    env = processes.env()
    proc = subprocess.run([str(ROOT / "bin" / "ecsm-cli"), "get", "esvc", "nope"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: ECSMService default/nope not found"


def test_a_conflicting_edit_reopens_with_the_current_version(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("apply", "-f", "-", stdin=yaml.safe_dump(service("web")))
    seen = racing_editor(tmp_path, monkeypatch, "'s/replicas: 2/replicas: 3/'")
    assert cli("edit", "esvc", "web")[:2] == (0, "ecsmservice/web edited\n")
    reopened = seen.read_text()
    assert "# error:" in reopened and "changed while you edited it" in reopened
    assert "resourceVersion: 2" in reopened and "replicas: 3" in reopened
    got = json.loads(cli("get", "esvc", "web", "-o", "json")[1])
    assert got["spec"]["deploymentStrategy"]["replicas"] == 3
    assert got["metadata"]["resourceVersion"] == 3
