"""Checking a change before it is sent, and typing fast, against a real registry process:
``ecsm-cli diff`` and its exit codes, ``apply --dry-run=server|client``, the global
options before or after the verb, and shell completion answered with object names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from ecsm_actors.cli.ecsm_cli import main as cli_main
from ecsm_actors.errors import NotFound
from ecsm_actors.protocol import Event, Heartbeat, Op
from ecsm_actors.registry.subscriber import Subscriber
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import (
    RunCli,
    StartRegistry,
    registry_config,
)
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(60)

FAST = {"ECSM_ACTORS_REGISTRY_HEARTBEAT_INTERVAL": "0.1"}


def manifest(path: Path, *docs: dict) -> str:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


def test_diff_exits_0_without_change_1_with_changes_and_2_on_an_error(
        cli: RunCli, tmp_path: Path) -> None:
    web = manifest(tmp_path / "web.yaml", service("web"))
    code, out, err = cli("diff", "-f", web)
    assert (code, err) == (1, "")
    assert "--- live/ecsm.sh.v1.ECSMService.default.web" in out
    assert "+    image: app@1.0#sylixos" in out and "\n-" not in out
    assert cli("apply", "-f", web)[0] == 0
    assert cli("diff", "-f", web) == (0, "", "")
    changed = manifest(tmp_path / "new.yaml", service("web", image="app@1.1#sylixos"))
    code, out, err = cli("diff", "-f", changed)
    assert (code, err) == (1, "")
    assert "-    image: app@1.0#sylixos\n+    image: app@1.1#sylixos" in out
    assert "resourceVersion" not in out
    bad = manifest(tmp_path / "bad.yaml", service("web", replicas=-1))
    code, out, err = cli("diff", "-f", bad)
    assert code == 2 and "replicas" in err and len(err.splitlines()) == 1
    code, _, err = cli("diff", "-f", changed, "--registry", f"ipc://{tmp_path}/none.sock")
    assert code == 2 and err.startswith("error: no registry is running")
    assert "app@1.0" in cli("get", "esvc", "web", "-o", "yaml")[1]  # diff wrote nothing


def test_a_server_dry_run_stores_nothing_and_publishes_nothing(
        processes: Processes, registry: StartRegistry, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ECSM_ACTORS_RUN_DIR", str(processes.run_dir))
    _, client = registry(env=FAST)
    client.create(service("db"))
    rv = client.ping()["resourceVersion"]
    path = manifest(tmp_path / "m.yaml", service("db", replicas=3), service("web"))
    with Subscriber(registry_config(processes).events_endpoint,
                    kinds=["ECSMService"]) as sub:
        wait_until(lambda: isinstance(sub.recv(1.0), Heartbeat), timeout=5,
                   what="a heartbeat")
        assert cli_main(["apply", "-f", path, "--dry-run=server"]) == 0
        assert capsys.readouterr().out.splitlines() == [
            "ecsmservice/db configured (server dry run)",
            "ecsmservice/web created (server dry run)"]
        dry = client.batch([{"op": Op.CREATE, "object": service("web")}], request_id="r-1",
                           dry_run=True)
        assert dry.results[0].ok and client.ping()["resourceVersion"] == rv
        with pytest.raises(NotFound):
            client.get("ECSMService", "default", "web")
        assert client.get("ECSMService", "default", "db")["spec"][
            "deploymentStrategy"]["replicas"] == 2
        assert client.watch_since(rv).events == []
        # The same requestId was not recorded: the real write applies, not a replay.
        real = client.batch([{"op": Op.CREATE, "object": service("web")}], request_id="r-1")
        assert real.results[0].ok and not real.replayed
        first = wait_until(lambda: next((m for m in iter(lambda: sub.recv(1.0), None)
                                         if isinstance(m, Event)), None),
                           timeout=5, what="the first event")
        assert (first.seq, first.object["metadata"]["name"]) == (rv + 1, "web")


def test_a_client_dry_run_validates_without_a_registry(
        run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for var in [v for v in os.environ if v.startswith("ECSM_ACTORS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("ECSM_ACTORS_RUN_DIR", str(run_dir))  # no registry there
    path = manifest(tmp_path / "m.yaml", service("web"), service("db", replicas=-1))
    assert cli_main(["apply", "-f", path, "--dry-run=client"]) == 1
    out, err = capsys.readouterr()
    assert out == "ecsmservice/web valid (dry run)\n"
    assert err.startswith("error: ecsmservice/db: ") and "replicas" in err
    assert cli_main(["create", "-f", path, "--dry-run", "client"]) == 1
    assert capsys.readouterr().out == "ecsmservice/web created (dry run)\n"


def test_global_options_mean_the_same_before_and_after_the_verb(
        cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("apply", "-f", manifest(tmp_path / "m.yaml", service("web", namespace="prod"),
                                       service("db")))[0] == 0
    before, after = cli("-n", "prod", "get", "esvc"), cli("get", "esvc", "-n", "prod")
    assert before[0] == 0 and "web" in before[1] and "db" not in before[1]
    assert before == after
    assert cli("-n", "prod", "rollout", "history", "web")[1].startswith("ecsmservice/web")
    bad = f"ipc://{tmp_path}/none.sock"
    before = cli("--registry", bad, "get", "esvc")
    assert before[0] == 1 and bad in before[2]
    assert cli("get", "esvc", "--registry", bad) == before
    # After the verb, an option overrides the same one before it.
    good = f"ipc://{os.environ['ECSM_ACTORS_RUN_DIR']}/registry.sock"
    assert cli("--registry", bad, "get", "esvc", "--registry", good)[0] == 0
    # A flag, before the verb or after it, overrides the environment.
    conf, empty = tmp_path / "bad.toml", tmp_path / "empty.toml"
    conf.write_text(f'[registry]\nendpoint = "{bad}"\n')
    empty.write_text("")
    monkeypatch.setenv("ECSM_ACTORS_CONF", str(conf))
    assert cli("get", "esvc")[0] == 1
    assert cli("--conf", str(empty), "get", "esvc")[0] == 0
    assert cli("get", "esvc", "--conf", str(empty))[0] == 0
    monkeypatch.delenv("ECSM_ACTORS_CONF")
    unreachable = ("--host", "127.0.0.1", "--port", "1", "--request-timeout", "0.2")
    before = cli(*unreachable, "get", "nodes")
    assert before[0] == 1 and "http://127.0.0.1:1/" in before[2]
    assert cli("get", "nodes", *unreachable) == before


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_script_of_each_shell(
        shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["completion", shell]) == 0
    assert "_ECSM_CLI_COMPLETE" in capsys.readouterr().out


def test_a_completion_request_is_answered_with_object_names_from_the_registry(
        cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("apply", "-f", manifest(tmp_path / "m.yaml", service("web"), service("db"),
                                       service("api", namespace="prod")))[0] == 0

    def complete(words: str) -> list[str]:
        monkeypatch.setenv("_ECSM_CLI_COMPLETE", "bash_complete")
        monkeypatch.setenv("COMP_WORDS", words)
        monkeypatch.setenv("COMP_CWORD", str(len(words.split(" ")) - 1))
        with pytest.raises(SystemExit):
            cli_main([])
        monkeypatch.delenv("_ECSM_CLI_COMPLETE")
        return capsys.readouterr().out.split()

    assert complete("ecsm-cli describe esvc ") == ["plain,db", "plain,web"]
    assert complete("ecsm-cli get esvc w") == ["plain,web"]
    assert complete("ecsm-cli -n prod rollout status ") == ["plain,api"]
    assert complete("ecsm-cli delete esvc -n prod ") == ["plain,api"]
    assert "plain,esvc" in complete("ecsm-cli edit ")
    assert "plain,diff" in complete("ecsm-cli d")
    assert complete("ecsm-cli --registry ipc:///nonexistent/r.sock get esvc ") == []
