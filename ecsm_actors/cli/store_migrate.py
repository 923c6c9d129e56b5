"""``ecsm-operator store migrate``: copy every object between the LMDB store and etcd.

Runs in the operator's shell, with the run dir's operator stopped (refused otherwise, in
one line). The copy itself is :mod:`ecsm_actors.store.migrate`; this module reads the
flags, checks that no supervisor runs in the run dir, and prints what was done.
"""

from __future__ import annotations

import click

from ecsm_actors.config import load_config
from ecsm_actors.errors import MigrationError
from ecsm_actors.store.migrate import BACKENDS, migrate
from ecsm_actors.supervisor.rundir import running_supervisor


@click.group("store")
def store_group() -> None:
    """The operator's store: LMDB on this computer, or an etcd cluster."""


@store_group.command("migrate")
@click.option("--from", "source", type=click.Choice(BACKENDS), required=True,
              help="Backend to copy from.")
@click.option("--to", "target", type=click.Choice(BACKENDS), required=True,
              help="Backend to copy into.")
@click.option("--overwrite", is_flag=True,
              help="Replace what the target holds (an LMDB data dir is kept aside).")
@click.option("--etcd-endpoints", metavar="URL,URL",
              help="etcd client URLs (default: store.etcd_endpoints).")
@click.option("--etcd-prefix", metavar="PREFIX",
              help="Key prefix in etcd (default: store.etcd_prefix).")
@click.pass_context
def migrate_command(ctx: click.Context, source: str, target: str, overwrite: bool,
                    etcd_endpoints: str | None, etcd_prefix: str | None) -> None:
    """Copy every object, with its metadata, from one backend to the other.

    Only metadata.resourceVersion changes. Stop the operator first (on every host when
    etcd serves several); the source is only read, so an interrupted migrate leaves it
    intact and says how to start over."""
    op = ctx.find_root().obj
    cfg = load_config(op.conf, overrides={"run.dir": op.run_dir,
                                          "store.etcd_endpoints": etcd_endpoints,
                                          "store.etcd_prefix": etcd_prefix})
    pid = running_supervisor(cfg)
    if pid is not None:
        raise MigrationError(f"the operator of {cfg.run_dir} is running (supervisor pid "
                             f"{pid}): stop it first (ecsm-operator stop), so that no write "
                             "lands during the copy")
    report = migrate(cfg, source, target, overwrite=overwrite,
                     progress=lambda line: click.echo(line, err=True))
    for line in report.lines():
        click.echo(line)
