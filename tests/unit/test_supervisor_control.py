"""The control socket's request handling and the operator's ps table (no sockets)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.cli.operator_output import duration, ps_table
from ecsm_actors.config import load_config
from ecsm_actors.errors import BadRequest, ConfigError, NotFound
from ecsm_actors.protocol import ControlOp
from ecsm_actors.supervisor import control
from ecsm_actors.supervisor.children import builtin_children, load_children


class FakeSupervisor:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def _row(self, name: str) -> dict[str, Any]:
        if name != "registry":
            raise NotFound(f"no child named {name!r}")
        return {"name": name}

    def ps(self) -> list[dict[str, Any]]:
        return [{"name": "registry"}]

    def kill_child(self, name: str, signum: int) -> dict[str, Any]:
        self.calls.append(("kill", (name, signum)))
        return self._row(name)

    def restart_child(self, name: str) -> dict[str, Any]:
        return self._row(name)

    def stop_child(self, name: str) -> dict[str, Any]:
        self.calls.append(("stop", name))
        return self._row(name)

    def start_child(self, name: str) -> dict[str, Any]:
        return self._row(name)

    def stats(self, name: str | None) -> dict[str, Any]:
        self.calls.append(("stats", name))
        return {}

    def status(self) -> dict[str, Any]:
        return {"ready": True}

    def shutdown(self) -> dict[str, Any]:
        return {"stopping": True}


def ask(target: FakeSupervisor, op: ControlOp, **fields: Any) -> Any:
    return protocol.decode_reply(control.handle(protocol.encode_control(op, 7, **fields),
                                                target)).result


@pytest.mark.parametrize(("text", "number"), [
    ("KILL", signal.SIGKILL), ("sigterm", signal.SIGTERM), ("STOP", signal.SIGSTOP),
    ("9", 9), (18, signal.SIGCONT),
])
def test_signals_are_accepted_by_name_or_number(text: Any, number: int) -> None:
    assert control.parse_signal(text) == number


@pytest.mark.parametrize("bad", ["NOPE", "999", True, None])
def test_an_unknown_signal_is_a_bad_request(bad: Any) -> None:
    with pytest.raises(BadRequest):
        control.parse_signal(bad)


def test_kill_defaults_to_sigkill_and_names_the_child() -> None:
    target = FakeSupervisor()
    assert ask(target, ControlOp.KILL, name="registry") == {"name": "registry"}
    assert target.calls == [("kill", ("registry", signal.SIGKILL))]


def test_stats_without_a_name_asks_for_every_child() -> None:
    target = FakeSupervisor()
    ask(target, ControlOp.STATS, name=None)
    assert target.calls == [("stats", None)]


def test_an_unknown_child_is_not_found_and_a_missing_name_a_bad_request() -> None:
    target = FakeSupervisor()
    with pytest.raises(NotFound, match="nobody"):
        ask(target, ControlOp.STOP, name="nobody")
    with pytest.raises(BadRequest, match="name"):
        ask(target, ControlOp.STOP)


def test_garbage_on_the_control_socket_gets_an_error_reply_not_a_crash() -> None:
    for frame in (b"\xc1garbage", msgpack.packb({"v": 1, "id": 1, "op": "reboot"}),
                  msgpack.packb({"v": 99, "id": 1, "op": "ps"})):
        with pytest.raises(BadRequest):
            protocol.decode_reply(control.handle(frame, FakeSupervisor()))


def test_the_ps_table_shows_every_column_and_why_a_child_is_not_running() -> None:
    rows: list[dict[str, Any]] = [
        {"name": "registry", "state": "RUNNING", "pid": 41, "uptime": 125.0, "restarts": 2,
         "lastExit": "SIGKILL", "heartbeatAge": 0.42, "queue": None, "retryIn": None,
         "reason": ""},
        {"name": "hpa-controller", "state": "HOLD-DOWN", "pid": None, "uptime": None,
         "restarts": 5, "lastExit": "1", "heartbeatAge": None, "queue": None, "retryIn": 12.3,
         "reason": "flapping: 5 restarts within 60s"},
    ]
    lines = ps_table(rows).splitlines()
    assert lines[0].split() == ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST-EXIT",
                                "HEARTBEAT-AGE", "QUEUE", "ROLE"]
    assert lines[1].split() == ["registry", "RUNNING", "41", "2m05s", "2", "SIGKILL", "0.4s",
                                "-", "-"]
    assert lines[2].split()[:3] == ["hpa-controller", "HOLD-DOWN", "(12.3s)"]
    assert lines[3].strip() == "hpa-controller: flapping: 5 restarts within 60s"


def test_durations_read_like_kubectl() -> None:
    assert [duration(x) for x in (None, 0.25, 5, 65, 7300, 90000)] == [
        "-", "250ms", "5s", "1m05s", "2h01m", "1d01h"]


def test_the_builtin_table_starts_the_simulator_first_and_controllers_after_the_registry(
        tmp_path: Path) -> None:
    cfg = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path),
                               "ECSM_ACTORS_SUPERVISOR_ZYGOTE": "false"})
    specs = builtin_children(cfg, simulate=True)
    assert [s.name for s in specs] == ["simulator", "registry", "service-controller",
                                       "hpa-controller"]
    assert specs[2].depends_on == ("simulator", "registry")
    assert [s.name for s in builtin_children(cfg, simulate=False)][0] == "registry"


def test_the_builtin_table_starts_the_zygote_before_every_child_it_forks(
        tmp_path: Path) -> None:
    cfg = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path)})
    specs = builtin_children(cfg, simulate=True)
    assert [s.name for s in specs] == ["zygote", "simulator", "registry",
                                       "service-controller", "hpa-controller"]
    assert all(s.depends_on[0] == "zygote" for s in specs[1:])
    assert specs[0].readiness.kind == "zygote" and specs[0].heartbeat_deadline == 0


def test_the_zygote_preloads_the_etcd_client_only_when_the_store_is_on_etcd(
        tmp_path: Path) -> None:
    lmdb = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path)})
    etcd = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path),
                                "ECSM_ACTORS_STORE_BACKEND": "etcd",
                                "ECSM_ACTORS_STORE_ETCD_ENDPOINTS": "http://127.0.0.1:2379"})
    zygote_on_lmdb = builtin_children(lmdb, simulate=False)[0]
    zygote_on_etcd = builtin_children(etcd, simulate=False)[0]
    assert "ecsm_actors.etcd.client" not in zygote_on_lmdb.argv
    assert {"ecsm_actors.etcd.client", "ecsm_actors.store.etcd_store",
            "ecsm_actors.runtime.leader.elector"} <= set(zygote_on_etcd.argv)


def test_a_child_table_with_a_forward_dependency_is_refused(tmp_path: Path) -> None:
    cfg = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path)})
    table = tmp_path / "children.toml"
    table.write_text('[[child]]\nname = "a"\nargv = ["x"]\ndepends_on = ["b"]\n'
                     '[[child]]\nname = "b"\nargv = ["y"]\n')
    with pytest.raises(ConfigError, match="depends on 'b'"):
        load_children(table, cfg)
    table.write_text('[[child]]\nname = "a"\nargv = ["x"]\n[[child]]\nname = "a"\nargv = ["y"]\n')
    with pytest.raises(ConfigError, match="duplicate"):
        load_children(table, cfg)
