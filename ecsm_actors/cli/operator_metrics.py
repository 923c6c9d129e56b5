"""``ecsm-operator metrics``: every counter and histogram of the running instance, in the
Prometheus text exposition format, on stdout.

Runs in the ecsm-operator process. Reads the supervisor's ``stats`` and ``status``
through its control socket and renders them as the supervisor's ``/metrics`` endpoint
does (:mod:`ecsm_actors.supervisor.metrics`), so ``ecsm-operator metrics > file`` and a
scrape of ``supervisor.metrics_endpoint`` show the same families.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ecsm_actors.cli.operator import OperatorContext


@click.command("metrics")
@click.pass_obj
def metrics(op: OperatorContext) -> None:
    """Counters and histograms of every process (Prometheus text format)."""
    from ecsm_actors.supervisor.metrics import render  # prometheus_client: only here

    client = op.client()
    text = render(client.stats(None), client.status())
    click.echo(text.decode("utf-8"), nl=False)
