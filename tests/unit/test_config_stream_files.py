"""The registry's stream endpoints (``registry.stream_endpoint``,
``registry.stream_events_endpoint``) name their own socket file: one named like a ZeroMQ
ipc endpoint's file (registry, events, control, heartbeat) or like the other stream's is
refused with one line (binding either would remove the other's file), as is a stream
endpoint that is not ``unix://``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecsm_actors.config import load_config
from ecsm_actors.errors import ConfigError


def refusal(tmp_path: Path, **settings: str) -> str:
    environ = {"ECSM_ACTORS_RUN_DIR": str(tmp_path)}
    environ.update({f"ECSM_ACTORS_{k.upper()}": v for k, v in settings.items()})
    with pytest.raises(ConfigError) as refused:
        load_config(environ=environ)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_a_stream_endpoint_on_an_ipc_endpoint_s_file_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, registry_stream_endpoint=f"unix://{tmp_path}/registry.sock")
    assert message == (
        f"config key registry.stream_endpoint: invalid value "
        f"'unix://{tmp_path}/registry.sock': its socket file {tmp_path}/registry.sock is "
        "also registry.endpoint's (binding one would remove the other's)")
    assert "is also supervisor.control_endpoint's" in refusal(
        tmp_path, registry_stream_endpoint=f"unix://{tmp_path}/c/../ctl",
        supervisor_control_endpoint=f"ipc://{tmp_path}//ctl")
    assert "is also registry.events_endpoint's" in refusal(
        tmp_path, registry_stream_events_endpoint=f"unix://{tmp_path}/events.sock")
    assert "is also supervisor.heartbeat_endpoint's" in refusal(
        tmp_path, registry_stream_events_endpoint=f"unix://{tmp_path}/heartbeat.sock")


def test_a_default_stream_file_taken_by_an_ipc_endpoint_is_refused(tmp_path: Path) -> None:
    assert "is also registry.endpoint's" in refusal(
        tmp_path, registry_endpoint=f"ipc://{tmp_path}/registry.stream")


def test_both_stream_endpoints_on_one_file_are_refused(tmp_path: Path) -> None:
    assert "registry.stream_endpoint" in refusal(
        tmp_path, registry_stream_endpoint=f"unix://{tmp_path}/s",
        registry_stream_events_endpoint=f"unix://{tmp_path}/./s")


def test_a_stream_endpoint_that_is_not_unix_is_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path, registry_stream_endpoint=f"ipc://{tmp_path}/s").endswith(
        "expected unix://PATH, or off")


def test_stream_endpoints_of_their_own_or_off_load(tmp_path: Path) -> None:
    load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path)})
    load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path),
                         "ECSM_ACTORS_REGISTRY_STREAM_ENDPOINT": "off",
                         "ECSM_ACTORS_REGISTRY_STREAM_EVENTS_ENDPOINT": "off",
                         "ECSM_ACTORS_REGISTRY_ENDPOINT": f"ipc://{tmp_path}/registry.stream",
                         "ECSM_ACTORS_REGISTRY_EVENTS_ENDPOINT": f"ipc://{tmp_path}/events.stream"})
