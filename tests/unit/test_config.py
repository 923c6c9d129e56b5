"""Configuration: precedence, key naming, refusal of bad values, the shipped conf file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecsm_actors.config import Config, child_environment, keys, load_config, render_toml
from ecsm_actors.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_work_without_any_file_or_environment() -> None:
    cfg = load_config(environ={})
    assert cfg == Config()
    assert cfg.registry_endpoint.startswith("ipc://")
    assert cfg.ecsm.port == 3001


def test_conf_file_beats_defaults_env_beats_file_and_flags_beat_env(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('[controller]\nworkers = 3\n[hpa]\nsync_period = 7.5\n[ecsm]\nport = 4000\n')
    env = {"ECSM_ACTORS_CONTROLLER_WORKERS": "5", "ECSM_ACTORS_ECSM_PORT": "4001"}
    cfg = load_config(conf, environ=env, overrides={"ecsm.port": "4002", "run.dir": None})
    assert cfg.hpa.sync_period == 7.5  # file
    assert cfg.controller.workers == 5  # env over file
    assert cfg.ecsm.port == 4002  # flag over env


def test_every_key_can_be_set_from_the_environment() -> None:
    for key in keys():
        section, name = key.split(".")
        var = f"ECSM_ACTORS_{section}_{name}".upper()
        value = getattr(getattr(Config(), section), name)
        cfg = load_config(environ={var: str(value)})
        assert getattr(getattr(cfg, section), name) == value, key


def test_one_run_dir_variable_places_every_socket_and_the_data(tmp_path: Path) -> None:
    cfg = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path)})
    for endpoint in (cfg.registry_endpoint, cfg.events_endpoint, cfg.control_endpoint,
                     cfg.heartbeat_endpoint):
        assert endpoint.startswith(f"ipc://{tmp_path}/")
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.log_dir.parent == tmp_path


def test_registry_alias_variable_sets_the_registry_endpoint() -> None:
    cfg = load_config(environ={"ECSM_ACTORS_REGISTRY": "tcp://127.0.0.1:7000"})
    assert cfg.registry_endpoint == "tcp://127.0.0.1:7000"


@pytest.mark.parametrize(
    ("var", "value", "key"),
    [
        ("ECSM_ACTORS_CONTROLLER_WORKERS", "many", "controller.workers"),
        ("ECSM_ACTORS_CONTROLLER_WORKERS", "0", "controller.workers"),
        ("ECSM_ACTORS_ECSM_PORT", "70000", "ecsm.port"),
        ("ECSM_ACTORS_REGISTRY_MAP_SIZE", "lots", "registry.map_size"),
        ("ECSM_ACTORS_LOG_LEVEL", "LOUD", "log.level"),
        ("ECSM_ACTORS_HPA_SYNC_PERIOD", "-1", "hpa.sync_period"),
        ("ECSM_ACTORS_REGISTRY_ENDPOINT", "http://x", "registry.endpoint"),
        # a turn's wait: inf crashed the loop's select, a second froze every turn
        ("ECSM_ACTORS_REGISTRY_COMMIT_DELAY", "inf", "registry.commit_delay"),
        ("ECSM_ACTORS_REGISTRY_COMMIT_DELAY", "1", "registry.commit_delay"),
    ],
)
def test_a_bad_value_is_refused_with_the_key_named(var: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(environ={var: value})


def test_an_unknown_key_in_the_conf_file_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("[controller]\nwokers = 3\n")
    with pytest.raises(ConfigError, match="controller.wokers"):
        load_config(conf, environ={})


def test_sizes_accept_quantities() -> None:
    cfg = load_config(environ={"ECSM_ACTORS_REGISTRY_MAP_SIZE": "64Mi"})
    assert cfg.registry.map_size == 64 << 20


def test_a_simulator_recorded_in_the_run_dir_is_found_without_flags(tmp_path: Path) -> None:
    (tmp_path / "ecsm-simulator.json").write_text(json.dumps({"host": "127.0.0.1", "port": 4555}))
    env = {"ECSM_ACTORS_RUN_DIR": str(tmp_path)}
    assert load_config(environ=env).ecsm_url == "http://127.0.0.1:4555"
    explicit = load_config(environ={**env, "ECSM_ACTORS_ECSM_PORT": "3001"})
    assert explicit.ecsm_url == "http://127.0.0.1:3001"


def test_the_child_environment_reproduces_the_configuration(tmp_path: Path) -> None:
    cfg = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path)},
                      overrides={"controller.workers": 4, "registry.map_size": "32Mi"})
    assert load_config(environ=child_environment(cfg)) == cfg


def test_the_shipped_conf_file_lists_every_key_with_its_default() -> None:
    shipped = (ROOT / "conf" / "ecsm-actors.toml").read_text()
    assert shipped == render_toml() + "\n" or shipped == render_toml()
    assert load_config(ROOT / "conf" / "ecsm-actors.toml", environ={}) == Config()


@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:7700", "tcp://*:7700",
                                      "tcp://10.1.2.3:7700", "tcp://device.example:7700",
                                      "tcp://eth0:7700"])
def test_plain_tcp_beyond_loopback_is_never_served(endpoint: str) -> None:
    from ecsm_actors.config import check_served_endpoints

    for key in ("ECSM_ACTORS_REGISTRY_ENDPOINT", "ECSM_ACTORS_REGISTRY_EVENTS_ENDPOINT"):
        cfg = load_config(environ={key: endpoint})  # a client may name a remote registry
        with pytest.raises(ConfigError) as e:
            check_served_endpoints(cfg)
        assert str(e.value).startswith(f"config key {key[12:].lower().replace('_', '.', 1)}: "
                                       f"'{endpoint}' would serve the registry without")
        assert "registry.remote_endpoint" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:7700", "tcp://127.3.4.5:*",
                                      "tcp://localhost:7700", "tcp://[::1]:7700"])
def test_plain_tcp_on_loopback_is_served(endpoint: str) -> None:
    from ecsm_actors.config import check_served_endpoints

    check_served_endpoints(load_config(environ={"ECSM_ACTORS_REGISTRY_ENDPOINT": endpoint}))


def test_remote_endpoints_are_tcp_and_distinct() -> None:
    with pytest.raises(ConfigError, match="registry.remote_endpoint: invalid value "
                                          "'ipc:///tmp/x': expected tcp://HOST:PORT"):
        load_config(environ={"ECSM_ACTORS_REGISTRY_REMOTE_ENDPOINT": "ipc:///tmp/x"})
    with pytest.raises(ConfigError, match="must differ from registry.remote_endpoint"):
        load_config(environ={"ECSM_ACTORS_REGISTRY_REMOTE_ENDPOINT": "tcp://0.0.0.0:7700",
                             "ECSM_ACTORS_REGISTRY_REMOTE_EVENTS_ENDPOINT":
                                 "tcp://0.0.0.0:7700"})
    cfg = load_config(environ={"ECSM_ACTORS_REGISTRY_REMOTE_ENDPOINT": "tcp://0.0.0.0:7700"})
    assert cfg.registry.remote_endpoint == "tcp://0.0.0.0:7700"


def test_etcd_endpoints_are_a_list_in_the_conf_file_and_comma_separated_in_the_environment(
        tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('[store]\nbackend = "etcd"\n'
                    'etcd_endpoints = ["http://127.0.0.1:2379", "http://127.0.0.1:2479"]\n')
    assert load_config(conf, environ={}).store.etcd_endpoints == (
        "http://127.0.0.1:2379", "http://127.0.0.1:2479")
    cfg = load_config(environ={"ECSM_ACTORS_STORE_BACKEND": "etcd",
                               "ECSM_ACTORS_STORE_ETCD_ENDPOINTS":
                                   "http://127.0.0.1:1, https://127.0.0.1:2"})
    assert cfg.store.etcd_endpoints == ("http://127.0.0.1:1", "https://127.0.0.1:2")
    assert child_environment(cfg)["ECSM_ACTORS_STORE_ETCD_ENDPOINTS"] == (
        "http://127.0.0.1:1,https://127.0.0.1:2")


def test_an_etcd_store_without_endpoints_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="store.etcd_endpoints.*needs at least one endpoint"):
        load_config(environ={"ECSM_ACTORS_STORE_BACKEND": "etcd"})


def test_a_renew_deadline_not_shorter_than_the_lease_is_refused() -> None:
    with pytest.raises(ConfigError, match="controller.renew_deadline"):
        load_config(environ={"ECSM_ACTORS_CONTROLLER_RENEW_DEADLINE": "4"})
