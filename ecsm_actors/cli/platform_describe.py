"""``ecsm-cli describe node|service|container|image``: one ECSM object in detail (§10.3).

Runs in the ecsm-cli process; registered by :mod:`.ecsm_cli`. Lookup rules: an exact id
wins, else an exact name; several name matches list the ids to choose from. Output
layouts follow the Go CLI (values at column 14 for nodes and images, 16 otherwise). Every
value ECSM sends is shown escaped (:func:`~ecsm_actors.cli.printers.escape`).
"""

from __future__ import annotations

from typing import Any

import click

from ecsm_actors.cli import platform_format, printers
from ecsm_actors.cli.platform import connect
from ecsm_actors.cli.platform_conn import ecsm_options
from ecsm_actors.cli.platform_format import bytes_size, go_duration, mb_size
from ecsm_actors.cli.platform_image import config_lines
from ecsm_actors.cli.root_options import CliContext, pass_cli
from ecsm_actors.ecsm.types import parse_ref
from ecsm_actors.errors import EcsmError


def field(label: str, value: object, width: int = 14, indent: int = 0) -> str:
    """A describe line (:func:`.platform_format.field`) with its value escaped."""
    return platform_format.field(label, printers.escape(str(value)), width, indent)


def pick(rows: list[Any], key: str, kind: str) -> Any:
    """The row whose id is ``key``, else the one named ``key`` (Go wording on failure)."""
    for row in rows:
        if row.id == key:
            return row
    named = [r for r in rows if r.name == key]
    if not named:
        raise click.ClickException(f"{kind} '{key}' not found")
    if len(named) > 1:
        ids = printers.escape(" ".join(str(r.id) for r in named))
        raise click.ClickException(f"multiple {kind}s found with name '{key}', please use "
                                   f"one of the following IDs: [{ids}]")
    return named[0]


def table(headers: list[str], rows: list[list[Any]], indent: str = "  ") -> None:
    for line in printers.render_table(headers, rows).splitlines():
        click.echo(indent + line)


@click.command("node")
@click.argument("name_or_id")
@ecsm_options
@pass_cli
def describe_node(obj: CliContext, name_or_id: str) -> None:
    """Show one ECSM node: status, live metrics, containers."""
    with connect(obj) as cs:
        node = pick(cs.nodes.list_all(), name_or_id, "node")
        view = cs.nodes.node_view(node.id)
        metrics = cs.nodes.metrics(node.id, instant=True)
    if not metrics:
        raise click.ClickException(f"no metrics returned for node '{name_or_id}'")
    m = metrics[0]
    for label, value in (("Name:", view.name), ("ID:", view.id), ("Status:", view.status),
                         ("Type:", view.type)):
        click.echo(field(label, value))
    click.echo("\nMetrics (real-time):")
    lines = [("Uptime:", go_duration(m.up_time)), ("CPU Usage:", f"{m.cpu.percent}%"),
             ("Memory Usage:", f"{m.ram.percent}% ({bytes_size(m.ram.size)})"),
             ("Disk Usage:", f"{m.rom.percent}% ({mb_size(m.rom.size)})"),
             ("Containers:", f"{m.running} running / {m.stop} stopped"),
             ("Processes:", m.process_count)]
    for label, metric in lines:
        click.echo(field(label, metric, 16, 2))
    if not view.children:
        click.echo("\nNo containers found on this node.")
        return
    click.echo(f"\nContainers on this node ({len(view.children)}):")
    table(["NAME", "ID", "STATUS", "SERVICE"],
          [[c.name, c.id, c.status, c.children[0].name if c.children else "N/A"]
           for c in view.children])


@click.command("service")
@click.argument("name_or_id")
@ecsm_options
@pass_cli
def describe_service(obj: CliContext, name_or_id: str) -> None:
    """Show one ECSM service: deployment, image, nodes, containers."""
    with connect(obj) as cs:
        row = pick(cs.services.list_all(), name_or_id, "service")
        svc = cs.services.get(row.id)
        containers = cs.containers.list_by_service([row.id], 1, 1000).items
    for label, value in (("Name:", svc.name), ("ID:", svc.id), ("Deploy Status:", svc.status),
                         ("Healthy:", str(svc.healthy).lower()), ("Created:", svc.created_time),
                         ("Updated:", svc.updated_time)):
        click.echo(field(label, value, 16))
    click.echo("Deployment:")
    click.echo(field("Policy:", svc.policy, 16, 2))
    click.echo(field("Replicas:", f"{svc.factor} desired, {svc.instance_online} online, "
                     f"{svc.instance_active} active", 16, 2))
    if svc.image is not None:
        click.echo("Image:")
        click.echo(field("Reference:", svc.image.ref, 16, 2))
        click.echo(field("Pull Policy:", svc.image.pull_policy, 16, 2))
        click.echo(field("Auto Upgrade:", svc.image.auto_upgrade, 16, 2))
        click.echo(f"  (Use 'ecsm-cli describe image {printers.escape(str(svc.image.ref))}' "
                   "for full details)")
    if svc.node_list:
        click.echo(f"\nNodes ({len(svc.node_list)}):")
        table(["NAME", "ADDRESS", "ID"],
              [[n.node_name, n.address, n.node_id] for n in svc.node_list])
        click.echo("")
    if not containers:
        click.echo("No container instances found for this service.")
        return
    click.echo(f"Containers ({len(containers)}):")
    table(["NAME", "STATUS", "RESTARTS", "NODE", "ID"],
          [[c.name, c.status, c.restart_cnt, c.node_name, c.id] for c in containers])


@click.command("container")
@click.argument("name")
@ecsm_options
@pass_cli
def describe_container(obj: CliContext, name: str) -> None:
    """Show one ECSM container: placement, runtime, usage, action history."""
    history = None
    with connect(obj) as cs:
        services = cs.services.list_all()
        if not services:
            raise click.ClickException("no services found in the system")
        matches = [c for c in cs.containers.list_all_by_service([s.id for s in services])
                   if c.name == name]
        if not matches:
            raise click.ClickException(f"container with name '{name}' not found")
        c = matches[0]
        try:
            history = cs.containers.history(c.task_id, 1, 100).items
        except EcsmError as e:
            click.echo(f"warning: cannot read the action history: {printers.escape(str(e))}",
                       err=True)
    for label, value in (("Name:", c.name), ("ID:", c.id), ("Task ID:", c.task_id),
                         ("Status:", c.status), ("Deploy Status:", c.deploy_status)):
        click.echo(field(label, value, 16))
    if c.failed_message is not None:
        click.echo(field("Failed Message:", c.failed_message, 16))
    click.echo("")
    click.echo(field("Controlled By:", f"Service/{c.service_name}", 16))
    click.echo(field("Node:", f"{c.node_name} ({c.address})", 16))
    click.echo(field("Image:", f"{c.image_name}:{c.image_version}", 16))
    click.echo("\nRuntime Info:")
    for label, runtime in (("Started At:", c.started_time), ("Created At:", c.created_time),
                           ("Uptime:", go_duration(c.uptime)), ("Restarts:", c.restart_cnt)):
        click.echo(field(label, runtime, 16, 2))
    mib, gib = 1 << 20, 1 << 30
    click.echo("\nResource Usage:")
    click.echo(field("CPU:", f"{c.cpu_usage.total:.2f}%", 16, 2))
    click.echo(field("Memory:", f"{c.memory_usage / mib:.2f} MiB / "
                     f"{c.memory_limit / mib:.2f} MiB", 16, 2))
    click.echo(field("Disk:", f"{c.size_usage / gib:.2f} GiB / {c.size_limit / gib:.2f} GiB",
                     16, 2))
    if not history:
        click.echo("\nNo action history found.")
        return
    click.echo(f"\nHistory ({len(history)}):")
    table(["TIME", "ACTION", "USER"], [[h.time, h.cmd, h.user] for h in history])


@click.command("image")
@click.argument("ref")
@click.option("--registry-id", default="local", show_default=True, help="Registry id.")
@ecsm_options
@pass_cli
def describe_image(obj: CliContext, ref: str, registry_id: str) -> None:
    """Show one image NAME@TAG[#OS] and its configuration."""
    try:
        parse_ref(ref)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="REF") from e
    with connect(obj) as cs:
        d = cs.images.details_by_ref(registry_id, ref)
    lines = [("Name:", d.name), ("ID:", d.id), ("Tag:", d.tag), ("Path:", d.path),
             ("OS/Arch:", f"{d.os}/{d.arch}"), ("Size:", f"{d.size:.2f} MB"),
             ("Created:", d.created_time)]
    if d.author is not None:
        lines.append(("Author:", d.author))
    lines += [("OCI Version:", d.oci_version), ("Pulled:", str(d.pulled).lower())]
    for label, value in lines:
        click.echo(field(label, value))
    if not d.config:
        click.echo("Configuration: Not available")
        return
    click.echo("Configuration:")
    for line in config_lines(d.config):
        click.echo(printers.escape(line))


#: ``describe`` commands on ECSM and their hidden aliases.
DESCRIBE_COMMANDS: tuple[tuple[click.Command, tuple[str, ...]], ...] = (
    (describe_node, ()), (describe_service, ("svc",)), (describe_container, ("co",)),
    (describe_image, ("img",)))
