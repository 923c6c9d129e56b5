"""``ecsm-cli``: the user's command line, a thin click layer over the clients.

Desired state (``apply``, ``get ecsmservices|ecsmhpas``, ``describe``, ``delete``,
``edit``, ``watch``, ``rollout``) goes to the registry; reality (``get nodes|services|
containers|images``, ``describe node|…``, ``container …``) goes straight to ECSM.

This module owns the root group, the shared ``get``/``describe`` groups, the global
options and the one catch-all of the CLI process: an :class:`EcsmActorsError` prints one
line ``error: …`` on stderr and exits 1 (a traceback only with ``-v``); usage errors exit 2.
The verbs themselves live in :mod:`.desired`, :mod:`.platform` and :mod:`.rollout` (and
the others imported below), which never import this module: every command is attached
here, in one place, with click's ``add_command``.
"""

from __future__ import annotations

import click

from ecsm_actors.cli import (
    completion,
    desired,
    diff,
    link_cmds,
    platform,
    platform_describe,
    rollout,
    root_options,
    top,
)
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


def alias(group: click.Group, command: click.Command, *names: str) -> None:
    """Attach hidden aliases of ``command`` (``get no`` for ``get nodes``)."""
    for name in names:
        copy = click.Command(name, params=command.params, callback=command.callback,
                             help=command.help, hidden=True,
                             context_settings=command.context_settings)
        group.add_command(copy, name)


# Every command of ecsm-cli, attached here and nowhere else.
for _command in (desired.apply_cmd, desired.create_cmd, desired.delete_cmd, desired.edit_cmd,
                 desired.watch_cmd, diff.diff_cmd, rollout.rollout, platform.container,
                 link_cmds.config_group, link_cmds.keys_group, link_cmds.link_group,
                 top.top, completion.completion_command("ecsm-cli")):
    cli.add_command(_command)
for _word, _command in desired.get_commands().items():
    get.add_command(_command, _word)
for _word, _command in desired.describe_commands().items():
    describe.add_command(_command, _word)
for _command, _aliases in platform.GET_COMMANDS:
    get.add_command(_command)
    alias(get, _command, *_aliases)
for _command, _aliases in platform_describe.DESCRIBE_COMMANDS:
    describe.add_command(_command)
    alias(describe, _command, *_aliases)

# Last, once every command is attached: the global options also after each verb.
root_options.spread(cli)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ecsm-cli``."""
    return run(cli, "ecsm-cli", argv)
