"""A Z85 key may start with "-": it reaches the link agent and `keys authorize` intact."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ecsm_actors.cli.operator import cli as operator_cli
from ecsm_actors.link.agent import parse_args
from ecsm_actors.link.settings import AgentSettings
from ecsm_actors.registry import authorized

DASH_KEY = "-^m)5LTu7JhhzEEglKh0n.1SJo)Yl}^<C#R^zf@%"


def test_the_link_agent_gets_a_server_key_that_starts_with_a_dash() -> None:
    settings = AgentSettings(name="sat", endpoint="tcp://127.0.0.1:7700", events="",
                             server_key=DASH_KEY, client_key="/k/client.key_secret",
                             idle_timeout=900.0, heartbeat_interval=2.0,
                             heartbeat_timeout=8.0)
    _, parsed = parse_args(["--dir", "/tmp/agent", *settings.to_args()])
    assert parsed == settings


def test_keys_authorize_takes_a_key_that_starts_with_a_dash(tmp_path: Path) -> None:
    result = CliRunner().invoke(operator_cli, ["keys", "authorize", "crew", DASH_KEY,
                                               "--role", "write"],
                                env={"ECSM_ACTORS_RUN_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    keys = authorized.read(authorized.authorized_keys_path(tmp_path))
    assert keys.by_name["crew"].key == DASH_KEY
