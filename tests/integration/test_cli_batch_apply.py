"""``ecsm-cli apply|create|delete -f`` of many objects against a real registry process:
one BATCH request (or a few, within registry.max_batch_writes), a line per object as
before, ``--atomic`` all or none, a retried batch answered with its first outcomes; and
``get`` of a long list in pages, printed as before."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecsm_actors.protocol import Op
from ecsm_actors.registry import client as client_module
from ecsm_actors.registry.client import RegistryClient
from tests.registry_samples import hpa, service

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every request the CLI sends: (op, fields)."""
    sent: list[tuple[str, dict[str, Any]]] = []
    real = RegistryClient.request

    def request(self: RegistryClient, op: Op, **fields: Any) -> Any:
        sent.append((str(op), fields))
        return real(self, op, **fields)

    monkeypatch.setattr(RegistryClient, "request", request)
    return sent


def manifest(path: Path, *docs: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


def ops(requests: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [op for op, _ in requests]


def test_apply_of_many_objects_is_one_request_with_a_line_per_object(
        cli, requests, tmp_path: Path) -> None:
    names = [f"s{i:02}" for i in range(30)]
    path = manifest(tmp_path / "m.yaml", *(service(n) for n in names), hpa("s00", "s00"))
    code, out, err = cli("apply", "-f", path)
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"ecsmservice/{n} created" for n in names] + [
        "ecsmhpa/s00 created"]
    assert ops(requests) == ["BATCH"]
    requests.clear()
    bad = service("s05", replicas=-1)
    code, out, err = cli("apply", "-f", manifest(tmp_path / "n.yaml", service("s04"), bad,
                                                 service("new")))
    assert code == 1 and ops(requests) == ["BATCH"]
    assert out == "ecsmservice/s04 unchanged\necsmservice/new created\n"
    assert err.startswith("error: ecsmservice/s05: ") and "replicas" in err
    assert len(err.splitlines()) == 1


def test_create_and_delete_of_many_objects_keep_their_lines_and_exit_codes(
        cli, requests, tmp_path: Path) -> None:
    path = manifest(tmp_path / "m.yaml", service("a"), service("b", finalizers=["ecsm.sh/x"]))
    assert cli("create", "-f", path) == (
        0, "ecsmservice/a created\necsmservice/b created\n", "")
    code, out, err = cli("create", "-f", path)
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 2 and "already exists" in err
    assert cli("delete", "esvc", "a", "b", "ghost", "--ignore-not-found") == (
        0, "ecsmservice/a deleted\necsmservice/b deletion requested (waiting for "
           "finalizers: ecsm.sh/x)\n", "")
    assert ops(requests) == ["BATCH", "BATCH", "BATCH"]


def test_atomic_applies_all_or_none_in_one_line(cli, tmp_path: Path) -> None:
    path = manifest(tmp_path / "m.yaml", service("a"), service("b", replicas=-1),
                    service("c"))
    code, out, err = cli("apply", "--atomic", "-f", path)
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0].startswith("error: ecsmservice/b: ") and "replicas" in lines[0]
    assert lines[1:] == ["error: nothing was applied (--atomic): 1 of 3 objects refused"]
    assert cli("get", "esvc")[1] == ""
    good = manifest(tmp_path / "g.yaml", service("a"), service("c"))
    assert cli("apply", "--atomic", "-f", good) == (
        0, "ecsmservice/a created\necsmservice/c created\n", "")
    # a missing object stops an atomic delete too, even when missing ones are ignored
    code, out, err = cli("delete", "--atomic", "--ignore-not-found", "esvc", "a", "ghost")
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == "error: nothing was applied (--atomic): 1 of 2 objects refused"
    assert cli("get", "esvc", "a")[0] == 0


def test_large_inputs_go_in_batches_within_the_registry_limit_atomic_needs_one(
        cli, requests, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECSM_ACTORS_REGISTRY_MAX_BATCH_WRITES", "4")
    path = manifest(tmp_path / "m.yaml", *(service(f"s{i}") for i in range(10)))
    code, out, _ = cli("apply", "-f", path)
    assert code == 0 and len(out.splitlines()) == 10
    assert [len(f["writes"]) for _, f in requests] == [4, 4, 2]
    requests.clear()
    code, out, err = cli("delete", "--atomic", "-f", path)
    assert (code, out, requests) == (1, "", [])
    assert err == ("error: --atomic: 10 objects do not fit in one request (at most 4 writes "
                   "and 4194304 bytes: registry.max_batch_writes, "
                   "registry.max_frame_bytes); nothing was applied\n")


def test_a_batch_sent_again_with_its_request_id_prints_the_same_lines(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "new_request_id", lambda: "apply-once")
    path = manifest(tmp_path / "m.yaml", service("a"), service("b", replicas=-1))
    first = cli("apply", "-f", path)
    assert first[:2] == (1, "ecsmservice/a created\n")
    assert cli("apply", "-f", path) == first  # answered from the registry's record
    assert json.loads(cli("get", "esvc", "a", "-o", "json")[1])["metadata"][
        "resourceVersion"] == 1


def test_get_pages_a_long_list_and_prints_it_as_before(cli, requests, tmp_path: Path) -> None:
    cli("apply", "-f", manifest(tmp_path / "m.yaml", *(service(f"s{i:02}") for i in range(7))))
    def shown(fmt: str, chunk: str) -> str:  # ages may cross a second between the two
        return re.sub(r"\b\d+s\b", "AGE", cli("get", "esvc", "-o", fmt, "--chunk-size",
                                              chunk)[1])

    whole = {fmt: shown(fmt, "0") for fmt in ("table", "wide", "json", "yaml")}
    requests.clear()
    for fmt, expected in whole.items():
        assert shown(fmt, "3") == expected
    assert [f.get("limit") for op, f in requests if op == "LIST"] == [3, 3, 3] * 4
    assert len(json.loads(whole["json"])["items"]) == 7
