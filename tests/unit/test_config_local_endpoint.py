"""Where the processes of this computer send their registry requests
(``Config.registry_local_endpoint``): the registry's local stream endpoint, unless the
process was pointed at a registry by ``registry.endpoint`` alone."""

from __future__ import annotations

from pathlib import Path

from ecsm_actors.config import load_config


def test_a_process_of_this_run_dir_talks_to_its_registrys_stream(tmp_path: Path) -> None:
    cfg = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path)})
    assert cfg.registry_local_endpoint == f"unix://{tmp_path / 'registry.stream'}"


def test_a_process_given_a_registry_endpoint_talks_to_that_registry(tmp_path: Path) -> None:
    other = f"ipc://{tmp_path / 'a' / 'registry.sock'}"  # another instance's registry
    cfg = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path / "b"),
                               "ECSM_ACTORS_REGISTRY_ENDPOINT": other})
    assert cfg.registry_local_endpoint == other
    remote = load_config(environ={"ECSM_ACTORS_REGISTRY": "tcp://127.0.0.1:7700"})
    assert remote.registry_local_endpoint == "tcp://127.0.0.1:7700"


def test_a_stream_endpoint_given_beside_it_is_still_preferred(tmp_path: Path) -> None:
    stream = f"unix://{tmp_path / 'a' / 'registry.stream'}"
    cfg = load_config(environ={"ECSM_ACTORS_REGISTRY_ENDPOINT": f"ipc://{tmp_path}/r.sock",
                               "ECSM_ACTORS_REGISTRY_STREAM_ENDPOINT": stream})
    assert cfg.registry_local_endpoint == stream
    off = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path),
                               "ECSM_ACTORS_REGISTRY_STREAM_ENDPOINT": "off"})
    assert off.registry_local_endpoint == f"ipc://{tmp_path / 'registry.sock'}"
