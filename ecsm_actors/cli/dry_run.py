"""``--dry-run=server|client|none`` of ``ecsm-cli apply|create``, and the lines it prints.

Runs in the CLI process. ``server``: the writes go to the registry with ``dryRun`` (it
defaults, validates and answers what it would do — created/configured/unchanged —
storing nothing, see :mod:`ecsm_actors.protocol`); each line ends ``(server dry run)``.
``client``: every object is defaulted and validated here with :mod:`ecsm_actors.api`
(the bounds of the configuration's ``[api]`` section), no registry needed; each line ends
``(dry run)``, as with ``kubectl``. Client-side, an APPLY cannot know whether the object
exists: its line says ``valid``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from ecsm_actors import api
from ecsm_actors.cli.printers import escape
from ecsm_actors.config import Config
from ecsm_actors.errors import EcsmActorsError

MODES = ("none", "server", "client")
SERVER_SUFFIX = " (server dry run)"
CLIENT_SUFFIX = " (dry run)"

DRY_RUN_OPTION = click.option(
    "--dry-run", "dry_run", type=click.Choice(MODES), default="none", show_default=True,
    help="server: the registry defaults, validates and says what it would do, storing "
    "nothing; client: validate here, without a registry.")


def check_locally(config: Config, labels: Sequence[str], objects: Sequence[dict[str, Any]],
                  verdict: str) -> int:
    """Default and validate ``objects`` here; print ``LABEL VERDICT (dry run)`` or the
    object's error line; return how many were refused."""
    api.configure_limits(config.api)
    failures = 0
    for label, obj in zip(labels, objects, strict=True):
        try:
            api.prepare({k: v for k, v in obj.items() if k != "status"})
        except EcsmActorsError as e:
            failures += 1
            click.echo(f"error: {label}: {escape(str(e))}", err=True)
            continue
        click.echo(f"{label} {verdict}{CLIENT_SUFFIX}")
    return failures
