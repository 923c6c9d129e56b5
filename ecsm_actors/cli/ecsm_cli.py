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

import click

from ecsm_actors.cli import root_options
from ecsm_actors.cli.entry import run
from ecsm_actors.cli.root_options import CliContext, pass_cli

__all__ = ["CliContext", "cli", "describe", "get", "main", "pass_cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@root_options.root_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Desired state through the registry, reality straight from ECSM.

    The global options may come before or after the verb (after it, they override the
    same option before it; see ecsm_actors.cli.root_options)."""
    ctx.ensure_object(CliContext)


@cli.group()
def get() -> None:
    """List objects: ecsmservices|ecsmhpas (registry) or nodes|services|containers|images (ECSM)."""


@cli.group()
def describe() -> None:
    """Show one object in detail."""


# The verb modules attach their commands to the groups above.
from ecsm_actors.cli import desired, link_cmds, platform, rollout  # noqa: E402, F401
from ecsm_actors.cli import completion, diff  # noqa: E402

cli.add_command(diff.diff_cmd)
cli.add_command(completion.completion_command("ecsm-cli"))
from ecsm_actors.cli import top  # noqa: E402

cli.add_command(top.top)

# Last, once every command is attached: the global options also after each verb.
root_options.spread(cli)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ecsm-cli``."""
    return run(cli, "ecsm-cli", argv)
