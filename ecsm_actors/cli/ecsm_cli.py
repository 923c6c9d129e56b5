"""``ecsm-cli``: the user's command line, a thin click layer over the clients.

Desired state (``apply``, ``get ecsmservices|ecsmhpas``, ``describe``, ``delete``,
``edit``, ``watch``, ``rollout``) goes to the registry; reality (``get nodes|services|
containers|images``, ``describe node|…``, ``container …``) goes straight to ECSM.

This module owns the root group, the shared ``get``/``describe`` groups, the global
options and the one catch-all of the CLI process: an :class:`EcsmActorsError` prints one
line ``error: …`` on stderr and exits 1 (a traceback only with ``-v``); usage errors exit 2.
The verbs themselves live in :mod:`.desired`, :mod:`.platform` and :mod:`.rollout`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click

from ecsm_actors.cli.entry import run
from ecsm_actors.config import Config, load_config


@dataclass
class CliContext:
    """Options shared by every verb, and the clients built from them on first use."""

    verbose: bool = False
    conf: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    #: ``--context``, ``--request-timeout``, ``--no-link`` (see :mod:`.connection`).
    context: str | None = None
    request_timeout: float | None = None
    no_link: bool = False
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.conf, overrides=self.overrides)
        return self._config


pass_cli = click.make_pass_decorator(CliContext)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("--conf", type=click.Path(dir_okay=False), envvar="ECSM_ACTORS_CONF",
              help="Config file (TOML).")
@click.option("--run-dir", help="Run directory of the instance to talk to "
              "(env ECSM_ACTORS_RUN_DIR).")
@click.option("--registry", "registry_endpoint", help="Registry endpoint "
              "(env ECSM_ACTORS_REGISTRY; default: the context's, else the run dir's socket).")
@click.option("--context", "context_name", help="Context of ~/.ecsm-cli.yaml to use "
              "(default: its current-context).")
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True),
              help="Overall deadline of a registry request, retries included, seconds "
              "(default: the context's, else registry.request_deadline).")
@click.option("--no-link", is_flag=True, help="Reach a remote registry directly, not "
              "through the context's link agent.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, conf: str | None, run_dir: str | None,
        registry_endpoint: str | None, context_name: str | None,
        request_timeout: float | None, no_link: bool) -> None:
    """Desired state through the registry, reality straight from ECSM."""
    ctx.obj = CliContext(
        verbose=verbose,
        conf=conf,
        overrides={"run.dir": run_dir, "registry.endpoint": registry_endpoint},
        context=context_name,
        request_timeout=request_timeout,
        no_link=no_link,
    )


@cli.group()
def get() -> None:
    """List objects: ecsmservices|ecsmhpas (registry) or nodes|services|containers|images (ECSM)."""


@cli.group()
def describe() -> None:
    """Show one object in detail."""


# The verb modules attach their commands to the groups above.
from ecsm_actors.cli import desired, link_cmds, platform, rollout  # noqa: E402, F401


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ecsm-cli``."""
    return run(cli, "ecsm-cli", argv)
