"""The pure parts of the desired-state CLI: manifests, tables, ages, describe text."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ecsm_actors.cli import desired_views, manifests
from ecsm_actors.cli.editing import strip_comments
from ecsm_actors.cli.printers import dump, format_age, format_duration, render_table
from ecsm_actors.errors import ManifestError
from tests.registry_samples import hpa, service

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def test_a_multi_document_file_yields_every_object_and_skips_empty_documents() -> None:
    text = "---\nkind: ECSMService\nmetadata: {name: a}\n---\n---\nkind: ECSMHpa\n" \
           "metadata: {name: b}\n"
    found = manifests.parse(text, "m.yaml")
    assert [m.label for m in found] == ["ecsmservice/a", "ecsmhpa/b"]
    assert [m.index for m in found] == [1, 3]


def test_a_list_document_contributes_its_items() -> None:
    text = '{"kind": "List", "items": [{"kind": "ECSMService", "metadata": {"name": "x"}}]}'
    assert [m.label for m in manifests.parse(text, "l.json")] == ["ecsmservice/x"]
    assert len(manifests.parse("- {kind: A}\n- {kind: B}\n", "seq.yaml")) == 2


@pytest.mark.parametrize("text, where", [
    ("a: 1\nb: : 2\n", "bad.yaml:2:"),
    ("key: [unclosed\n", "bad.yaml:2:"),
    ("a: 'open\n", "bad.yaml:"),
])
def test_a_yaml_syntax_error_names_the_file_and_line(text: str, where: str) -> None:
    with pytest.raises(ManifestError, match=f"^{where}.*invalid YAML"):
        manifests.parse(text, "bad.yaml")


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ManifestError, match="document 1: expected a mapping"):
        manifests.parse("just a string\n", "s.yaml")
    with pytest.raises(ManifestError, match="item 1"):
        manifests.parse("- {kind: A}\n- 3\n", "s.yaml")


def test_a_directory_source_reads_its_manifest_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("kind: ECSMService\nmetadata: {name: b}\n")
    (tmp_path / "a.json").write_text('{"kind": "ECSMService", "metadata": {"name": "a"}}')
    (tmp_path / "README.md").write_text("# not a manifest")
    assert [m.label for m in manifests.load([str(tmp_path)])] == [
        "ecsmservice/a", "ecsmservice/b"]
    with pytest.raises(ManifestError, match="cannot read"):
        manifests.load([str(tmp_path / "missing.yaml")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ManifestError, match="no .yaml"):
        manifests.load([str(empty)])


def test_stdin_is_read_for_dash() -> None:
    found = manifests.load(["-"], stdin=io.StringIO("kind: ECSMHpa\nmetadata: {name: h}\n"))
    assert found[0].source == "<stdin>" and found[0].label == "ecsmhpa/h"


def test_stdin_is_read_at_most_8_mib() -> None:
    endless = io.StringIO("# " * (4 << 20) + "#")
    with pytest.raises(ManifestError, match="^<stdin>: larger than 8 MiB"):
        manifests.load(["-"], stdin=endless)
    assert endless.tell() == (8 << 20) + 1


@pytest.mark.parametrize(("text", "message"), [
    ("a: !!binary aGVsbG8=\n", "unsupported YAML tag !!binary"),
    ("a: !!omap [b: 1]\n", "unsupported YAML tag !!omap"),
    ("a: {[1]: x}\n", "invalid YAML"),
    ("a: {null: x}\n", "a mapping key must be a string, got null"),
])
def test_yaml_that_no_api_object_can_hold_is_refused_with_its_place(
        text: str, message: str) -> None:
    with pytest.raises(ManifestError, match="^m.yaml:1:") as info:
        manifests.parse(text, "m.yaml")
    assert message in str(info.value)


@pytest.mark.parametrize("seconds, shown", [
    (5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
    (20 * 3600, "20h"), (3 * 86400 + 3600, "3d1h"), (40 * 86400, "40d"),
    (800 * 86400, "2y"),
])
def test_durations_read_like_kubectl(seconds: int, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_age_of_a_timestamp_and_of_nothing() -> None:
    assert format_age("2023-11-14T22:12:20Z", now=NOW) == "60s"
    assert format_age(None, now=NOW) == "<unknown>"
    assert format_age("yesterday", now=NOW) == "<unknown>"


def test_a_table_aligns_columns_and_marks_empty_cells() -> None:
    text = render_table(["name", "image"], [["web", "app@1.0"], ["a-long-name", None]])
    assert text.splitlines() == ["NAME          IMAGE", "web           app@1.0",
                                 "a-long-name   <none>"]


def test_dump_writes_json_and_yaml_in_wire_order() -> None:
    obj = {"kind": "ECSMService", "apiVersion": "ecsm.sh/v1"}
    assert dump(obj, "yaml") == "kind: ECSMService\napiVersion: ecsm.sh/v1"
    assert dump(obj, "json").startswith('{\n  "kind"')


def test_a_service_row_shows_readiness_against_the_desired_count() -> None:
    obj = service("web", replicas=3)
    obj["metadata"]["creationTimestamp"] = "2023-11-14T22:03:20Z"
    obj["status"] = {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2,
                     "currentRevision": "abc", "underlyingServiceIDs": ["7", "9"]}
    cols, rows = desired_views.table("ECSMService", [obj], wide=True, all_namespaces=False,
                                     now=NOW)
    assert dict(zip(cols, rows[0], strict=True)) == {
        "NAME": "web", "READY": "2/3", "UP-TO-DATE": 3, "AVAILABLE": 2, "STRATEGY": "Dynamic",
        "IMAGE": "app@1.0#sylixos", "AGE": "10m", "PRIORITY": 0, "NODES": "node-1,node-2",
        "REVISION": "abc", "ECSM-IDS": "7,9"}


def test_a_static_service_wants_one_instance_per_node() -> None:
    obj = service("db")
    obj["spec"]["deploymentStrategy"] = {"type": "Static", "nodes": ["n1", "n2"]}
    assert desired_views.desired_replicas(obj) == 2


def test_hpa_targets_show_current_over_target_or_unknown() -> None:
    obj = hpa("web")
    assert desired_views.hpa_targets(obj) == "cpu: <unknown>/60%"
    obj["status"] = {"currentMetrics": [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 45.4}}}]}
    assert desired_views.hpa_targets(obj) == "cpu: 45%/60%"
    cols, rows = desired_views.table("ECSMHpa", [obj], wide=False, all_namespaces=True)
    assert cols[:3] == ["NAMESPACE", "NAME", "REFERENCE"]
    assert rows[0][2] == "ECSMService/web"


def test_describe_shows_conditions_and_scale_decisions() -> None:
    obj = hpa("web")
    obj["metadata"].update(creationTimestamp="2023-11-14T22:00:00Z", resourceVersion=4)
    obj["status"] = {
        "currentReplicas": 3,
        "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale",
                        "message": "ok", "lastTransitionTime": "2023-11-14T22:13:00Z"}],
        "scaleEvents": [{"timestamp": "2023-11-14T22:12:20Z", "replicaChange": 2,
                         "reason": "cpu above target"}],
    }
    text = desired_views.describe_hpa(obj, now=NOW)
    assert "AbleToScale" in text and "ReadyForNewScale" in text and "20s" in text
    assert "cpu above target" in text and "60s" in text
    assert "Resource version:     4" in text
    assert "Conditions:            <none>" in desired_views.describe_service(service(), now=NOW)


def test_comment_lines_are_dropped_from_an_edited_buffer() -> None:
    assert strip_comments("# head\nkind: A\n  # indented\nimage: app@1#sylixos\n") == (
        "kind: A\nimage: app@1#sylixos\n")
