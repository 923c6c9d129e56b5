"""Contexts of ``~/.ecsm-cli.yaml`` and where a command's registry requests go: flags >
environment > context (``--context``, else the current one) > the local run dir; the
file written atomically, 0600, other keys kept; bad files and keys are one line."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
import yaml

from ecsm_actors import curve
from ecsm_actors.cli import connection
from ecsm_actors.cli.ecsm_cli import main as cli_main
from ecsm_actors.cli.platform_conn import resolve as resolve_ecsm
from ecsm_actors.config import load_config
from ecsm_actors.errors import ConfigError

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in [v for v in os.environ if v.startswith(("ECSM_ACTORS_", "ECSMCLI_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def keys(tmp_path: Path) -> tuple[str, str]:
    """(server public key, client secret key file)."""
    public, _ = curve.generate(tmp_path / "server", "server")
    _, secret = curve.generate(tmp_path / "client", "client")
    return curve.load_public(public).decode(), str(secret)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli_main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def target(home: Path, environ: dict[str, str] | None = None, *, flag: str | None = None,
           context: str | None = None, timeout: float | None = None) -> connection.Target:
    env = dict(environ or {})
    cfg = load_config(None, environ=env, overrides={"registry.endpoint": flag})
    return connection.resolve(cfg, flag_registry=flag, context_name=context,
                              request_timeout=timeout, environ=env, home=home)


def write_contexts(home: Path, keys: tuple[str, str], current: str | None = "sat") -> None:
    server_key, client_key = keys
    doc = {
        "host": "10.9.9.9", "port": 3001, "protocol": "http",
        "current-context": current,
        "contexts": [
            {"name": "sat", "registry": "tcp://10.0.0.5:7700", "events": "tcp://10.0.0.5:7701",
             "server-key": server_key, "client-key": client_key,
             "ecsm": "http://10.0.0.5:3002", "request-timeout": 30},
            {"name": "lab", "registry": "tcp://10.0.0.6:7700", "server-key": server_key,
             "client-key": client_key},
        ],
    }
    (home / ".ecsm-cli.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def test_the_current_context_is_used_when_nothing_else_names_a_registry(
        home: Path, keys: tuple[str, str]) -> None:
    write_contexts(home, keys)
    t = target(home)
    assert (t.endpoint, t.events, t.context, t.deadline) == (
        "tcp://10.0.0.5:7700", "tcp://10.0.0.5:7701", "sat", 30.0)
    assert (t.server_key, t.client_key) == keys
    assert t.link_name == "sat"


def test_an_explicit_context_beats_the_current_one(home: Path, keys: tuple[str, str]) -> None:
    write_contexts(home, keys)
    t = target(home, context="lab")
    assert (t.endpoint, t.events, t.context) == ("tcp://10.0.0.6:7700", "", "lab")
    assert t.deadline == load_config(None, environ={}).registry.request_deadline


def test_environment_beats_the_context_field_by_field(home: Path,
                                                      keys: tuple[str, str]) -> None:
    write_contexts(home, keys)
    t = target(home, {"ECSM_ACTORS_REGISTRY_EVENTS": "tcp://10.0.0.7:9001"}, context="sat")
    assert (t.endpoint, t.events) == ("tcp://10.0.0.5:7700", "tcp://10.0.0.7:9001")
    t = target(home, {"ECSM_ACTORS_REGISTRY": "tcp://10.0.0.8:9000"}, context="sat")
    assert t.endpoint == "tcp://10.0.0.8:9000" and t.server_key == keys[0]
    assert t.link_name.startswith("env-")  # not the context's connections: not its agent
    assert target(home, {"ECSM_ACTORS_REGISTRY_REQUEST_DEADLINE": "7"}).deadline == 7.0


def test_flags_beat_the_environment(home: Path, keys: tuple[str, str]) -> None:
    write_contexts(home, keys)
    t = target(home, {"ECSM_ACTORS_REGISTRY": "ipc:///tmp/env.sock"},
               flag="ipc:///tmp/flag.sock", timeout=2.5)
    assert (t.endpoint, t.deadline, t.context) == ("ipc:///tmp/flag.sock", 2.5, None)


def test_a_named_local_instance_skips_the_current_context(home: Path,
                                                          keys: tuple[str, str]) -> None:
    write_contexts(home, keys)
    t = target(home, {"ECSM_ACTORS_RUN_DIR": "/tmp/ea-run"})
    assert (t.endpoint, t.events) == ("unix:///tmp/ea-run/registry.stream",
                                      "unix:///tmp/ea-run/events.stream")
    assert (t.context, t.server_key) == (None, "")


def test_without_any_context_the_local_run_dir_is_used(home: Path) -> None:
    t = target(home)
    assert t.endpoint.startswith("unix://") and t.endpoint.endswith("registry.stream")
    assert not t.secured


def test_keys_from_the_environment_alone_reach_a_remote_registry(
        home: Path, keys: tuple[str, str]) -> None:
    t = target(home, {"ECSM_ACTORS_REGISTRY": "tcp://10.0.0.5:7700",
                      "ECSM_ACTORS_REGISTRY_EVENTS": "tcp://10.0.0.5:7701",
                      "ECSM_ACTORS_SERVER_KEY": keys[0], "ECSM_ACTORS_CLIENT_KEY": keys[1]})
    assert t.secured and t.keys() is not None and t.context is None


def test_a_remote_endpoint_without_keys_is_refused_but_loopback_is_plain(home: Path) -> None:
    with pytest.raises(ConfigError, match="remote endpoint: a server key and a client key"):
        target(home, {"ECSM_ACTORS_REGISTRY": "tcp://10.0.0.5:7700",
                      "ECSM_ACTORS_REGISTRY_EVENTS": "tcp://10.0.0.5:7701"})
    t = target(home, {"ECSM_ACTORS_REGISTRY": "tcp://127.0.0.1:7700",
                      "ECSM_ACTORS_REGISTRY_EVENTS": "tcp://127.0.0.1:7701"})
    assert not t.secured


def test_a_server_key_without_a_client_key_is_refused(home: Path,
                                                      keys: tuple[str, str]) -> None:
    with pytest.raises(ConfigError, match="has a server key but no client key"):
        target(home, {"ECSM_ACTORS_REGISTRY": "tcp://127.0.0.1:7700",
                      "ECSM_ACTORS_SERVER_KEY": keys[0]})


def test_a_remote_command_without_keys_prints_one_line(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--registry", "tcp://10.0.0.5:7700", "get", "esvc")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: tcp://10.0.0.5:7700 is a remote")


def test_set_and_use_context_keep_other_keys_and_write_0600(
        home: Path, keys: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    path = home / ".ecsm-cli.yaml"
    path.write_text("host: 10.9.9.9\nport: 3001\nextra: {kept: true}\n")
    path.chmod(0o644)
    code, out, _ = run(capsys, "config", "set-context", "sat", "--registry",
                       "tcp://10.0.0.5:7700", "--server-key", keys[0], "--client-key", keys[1],
                       "--request-timeout", "20")
    assert (code, out) == (0, 'Context "sat" created.\n')
    assert run(capsys, "config", "set-context", "sat", "--events", "tcp://10.0.0.5:7701")[1] \
        == 'Context "sat" modified.\n'
    assert run(capsys, "config", "use-context", "sat")[1] == 'Switched to context "sat".\n'
    doc = yaml.safe_load(path.read_text())
    assert doc["host"] == "10.9.9.9" and doc["extra"] == {"kept": True}
    assert doc["current-context"] == "sat"
    assert doc["contexts"] == [{"name": "sat", "registry": "tcp://10.0.0.5:7700",
                                "events": "tcp://10.0.0.5:7701", "server-key": keys[0],
                                "client-key": keys[1], "request-timeout": 20.0}]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in home.iterdir() if p.name.startswith(".ecsm-cli.yaml")) \
        == [".ecsm-cli.yaml"]  # no temporary file left
    assert run(capsys, "config", "current-context")[1] == "sat\n"
    listing = run(capsys, "config", "get-contexts")[1].splitlines()
    assert listing[1].split()[:3] == ["*", "sat", "tcp://10.0.0.5:7700"]


def test_a_bad_file_is_one_line_and_left_untouched(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = home / ".ecsm-cli.yaml"
    path.write_text("contexts: [\n  - name: sat\n")
    for args in (("config", "get-contexts"), ("config", "use-context", "sat"),
                 ("config", "set-context", "sat", "--registry", "tcp://127.0.0.1:1"),
                 ("get", "esvc")):
        code, out, err = run(capsys, *args)
        assert code == 1 and out == "", args
        assert err.count("\n") == 1 and "is not valid YAML (line" in err, (args, err)
    assert path.read_text() == "contexts: [\n  - name: sat\n"


def test_bad_values_are_refused_with_one_line_naming_the_field(
        home: Path, keys: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (("--server-key", "not-a-key"), "server-key is not a CURVE public key"),
        (("--registry", "http://x"), "registry: expected tcp://HOST:PORT or ipc://PATH"),
        (("--ecsm", "ftp://x"), "ecsm: expected http://HOST:PORT"),
        (("--client-key", str(home / "missing.key_secret")), "cannot read the key file"),
    ]
    for args, message in cases:
        code, _, err = run(capsys, "config", "set-context", "sat", *args)
        assert code == 1 and err.count("\n") == 1 and message in err, (args, err)
    assert run(capsys, "config", "set-context", "../x", "--registry", "tcp://h:1")[2] \
        .startswith("error: context name ../x: expected")
    code, _, err = run(capsys, "--context", "nope", "get", "esvc")
    assert code == 1 and "no context nope in" in err


def test_the_context_ecsm_url_feeds_the_platform_verbs_below_flags_and_env(
        home: Path, keys: tuple[str, str]) -> None:
    write_contexts(home, keys)
    cfg = load_config(None, environ={})
    values = connection.ecsm_values(type("Ctx", (), {"config": cfg, "context": None})(), home)
    assert values == {"protocol": "http", "host": "10.0.0.5", "port": 3002}
    settings = resolve_ecsm(cfg.ecsm, {}, {}, home, home, values)
    assert (settings.host, settings.port) == ("10.0.0.5", 3002)  # not the file's top keys
    settings = resolve_ecsm(cfg.ecsm, {"port": 4000}, {"ECSMCLI_HOST": "h"}, home, home, values)
    assert (settings.host, settings.port) == ("h", 4000)


def test_keys_generate_writes_a_private_pair_and_prints_the_public_key(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keys", "generate")
    assert code == 0
    secret = home / ".ecsm-cli.d" / "keys" / "client.key_secret"
    assert out.strip() == curve.load_pair(secret).public.decode()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
    assert "ecsm-operator keys authorize NAME" in err and "config set-context" in err
    assert run(capsys, "keys", "generate")[1] == out  # kept, not replaced
    shared = home / "shared"
    shared.mkdir(mode=0o755)
    assert run(capsys, "keys", "generate", "--out", str(shared / "ground"))[0] == 0
    assert stat.S_IMODE((shared / "ground.key_secret").stat().st_mode) == 0o600
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # the user's directory left alone
    assert sorted(p.name for p in shared.iterdir()) == ["ground.key", "ground.key_secret"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_wait_shows_one_updating_line_on_a_terminal_only() -> None:
    tty = Terminal()
    line = connection.WaitLine(tty)
    line.show(2, 1.2)
    line.show(3, 12.4)
    line.clear()
    line.clear()
    assert tty.getvalue() == ("\r\x1b[Kwaiting for registry: attempt 2, 1 s"
                              "\r\x1b[Kwaiting for registry: attempt 3, 12 s\r\x1b[K")
    pipe = io.StringIO()
    connection.WaitLine(pipe).show(3, 12.0)
    assert pipe.getvalue() == ""
