"""``ecsm-cli``: the user's command line, a thin click layer over the clients.

Desired state (``apply``, ``get ecsmservices|ecsmhpas``, ``describe``, ``delete``,
``edit``, ``watch``, ``rollout``) goes to the registry; reality (``get nodes|services|
containers|images``, ``describe node|…``, ``container …``) goes straight to ECSM.

This module owns the root group, the shared ``get``/``describe`` groups, the global
options and the one catch-all of the CLI process: an :class:`EcsmActorsError` prints one
line ``error: …`` on stderr and exits 1 (a traceback only with ``-v``); usage errors exit 2.
The verbs themselves live in :mod:`.desired` and :mod:`.platform` (and ``.rollout``).
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

import click

from ecsm_actors.config import Config, load_config
from ecsm_actors.errors import EcsmActorsError


@dataclass
class CliContext:
    """Options shared by every verb, and the clients built from them on first use."""

    verbose: bool = False
    conf: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
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
              "(env ECSM_ACTORS_REGISTRY; default: the run dir's socket).")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, conf: str | None, run_dir: str | None,
        registry_endpoint: str | None) -> None:
    """Desired state through the registry, reality straight from ECSM."""
    ctx.obj = CliContext(
        verbose=verbose,
        conf=conf,
        overrides={"run.dir": run_dir, "registry.endpoint": registry_endpoint},
    )


@cli.group()
def get() -> None:
    """List objects: ecsmservices|ecsmhpas (registry) or nodes|services|containers|images (ECSM)."""


@cli.group()
def describe() -> None:
    """Show one object in detail."""


def _load_verbs() -> None:
    # The verb modules attach their commands to the groups above.
    import importlib

    for module in ("desired", "platform", "rollout"):
        try:
            importlib.import_module(f"ecsm_actors.cli.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"ecsm_actors.cli.{module}":
                raise


_load_verbs()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ecsm-cli``: the CLI's only catch-all."""
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        # Without standalone mode click *returns* the code of ``ctx.exit(n)``.
        code = cli.main(args=argv, prog_name="ecsm-cli", standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool):
            return code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except EcsmActorsError as e:
        if verbose:
            traceback.print_exc()
        click.echo(f"error: {e}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
