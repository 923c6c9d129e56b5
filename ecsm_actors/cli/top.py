"""``ecsm-cli top``: CPU and memory now, per node, per ECSM service and per ECSMService.

Runs in the ecsm-cli process. Figures come straight from ECSM, read as every platform
read is (retried within the command's deadline, :mod:`.platform_retry`)::

    top nodes      GET overview/node per node: cpu.percent, ram.size (bytes) and percent
    top services   GET container/service: Σ cpuUsage.total and Σ memoryUsage of the
                   running instances of each ECSM service
    top esvc       the same summed over the revisions of each ECSMService (an ECSM
                   service named ``{namespace}.{name}.{revision}``)

Utilization is what the HPA computes (:mod:`ecsm_actors.controllers.hpa.samples`): CPU is
the average ``cpuUsage.total`` of the running instances (percent of one core), memory
Σ memoryUsage / Σ memoryLimit × 100. Where an ECSMHpa of the registry targets the
ECSMService, its target is printed beside the current value (``45%/60%``, as ``kubectl
get hpa``); with no registry reachable the figures are still shown, with a note on
stderr. ``--watch`` reads again every ``--interval`` seconds: on a terminal the block is
redrawn in place, otherwise blocks follow each other, separated by a blank line.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import click

from ecsm_actors.cli import connection, printers
from ecsm_actors.cli.root_options import CliContext, pass_cli
from ecsm_actors.cli.platform import connect
from ecsm_actors.cli.platform_conn import ecsm_options
from ecsm_actors.ecsm.clientset import Clientset
from ecsm_actors.ecsm.types import ContainerInfo
from ecsm_actors.errors import EcsmActorsError

MIB = 1 << 20
#: ``cpu`` unless the HPA names its resources: the default target of an ECSMHpa.
DEFAULT_CPU_TARGET = 80.0
#: Clears the terminal and puts the cursor home (``--watch`` on a TTY).
CLEAR = "\x1b[H\x1b[2J"


@dataclass(kw_only=True)
class Usage:
    """One row of ``top services``/``top esvc`` (``-o json`` prints these fields)."""

    name: str
    namespace: str = ""
    revisions: int = 0
    running: int = 0
    instances: int = 0
    cpu_percent: float = 0.0
    memory_bytes: int = 0
    memory_limit_bytes: int = 0
    cpu_utilization: float | None = None
    memory_utilization: float | None = None
    targets: dict[str, float] = field(default_factory=dict)

    def add(self, c: ContainerInfo) -> None:
        self.instances += 1
        if c.status != "running":
            return
        self.running += 1
        self.cpu_percent += max(0.0, float(c.cpu_usage.total))
        self.memory_bytes += max(0, int(c.memory_usage))
        self.memory_limit_bytes += max(0, int(c.memory_limit))

    def finish(self) -> Usage:
        self.cpu_percent = round(self.cpu_percent, 2)
        if self.running:
            self.cpu_utilization = round(self.cpu_percent / self.running, 1)
        if self.memory_limit_bytes:
            self.memory_utilization = round(
                100.0 * self.memory_bytes / self.memory_limit_bytes, 1)
        return self


@click.group("top")
def top() -> None:
    """CPU and memory of nodes, ECSM services and ECSMServices (from ECSM's metrics)."""


def watching(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--interval", type=click.FloatRange(min=0.5), default=2.0,
                     show_default=True, help="Seconds between reads with --watch.")(f)
    f = click.option("-w", "--watch", is_flag=True, help="Read again and again "
                     "(redrawn in place on a terminal).")(f)
    f = click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
                     show_default=True, help="Output format.")(f)
    return ecsm_options(f)


@top.command("nodes")
@watching
@pass_cli
def top_nodes(obj: CliContext, output: str, watch: bool, interval: float) -> None:
    """CPU and memory of every ECSM node (``<unknown>`` when it reports no metrics)."""
    def read() -> tuple[list[str], list[list[Any]], list[dict[str, Any]]]:
        rows, docs = [], []
        with connect(obj) as cs:
            for node in sorted(cs.nodes.list_all(), key=lambda n: n.name):
                samples = cs.nodes.metrics(node.id) if node.status == "online" else []
                if not samples:
                    rows.append([node.name, "<unknown>", "<unknown>", "<unknown>", "-"])
                    docs.append({"name": node.name, "id": node.id, "status": node.status,
                                 "metrics": None})
                    continue
                m = samples[0]
                cpu, ram = _percent(m.cpu.percent), _percent(m.ram.percent)
                rows.append([node.name, _pct(cpu), f"{m.ram.size / MIB:.0f}Mi", _pct(ram),
                             f"{m.running}/{m.running + m.stop}"])
                docs.append({"name": node.name, "id": node.id, "status": node.status,
                             "metrics": {"cpuPercent": cpu, "memoryBytes": m.ram.size,
                                         "memoryPercent": ram, "running": m.running,
                                         "stopped": m.stop}})
        return ["NAME", "CPU(%)", "MEMORY", "MEMORY(%)", "CONTAINERS"], rows, docs

    _show(read, output, watch, interval, "No nodes found.")


@top.command("services")
@watching
@pass_cli
def top_services(obj: CliContext, output: str, watch: bool, interval: float) -> None:
    """CPU and memory of every ECSM service (its running instances), with the target of
    the ECSMHpa scaling its ECSMService."""
    def read() -> tuple[list[str], list[list[Any]], list[dict[str, Any]]]:
        with connect(obj) as cs:
            usages = _service_usage(cs)
        targets = _hpa_targets(obj)
        for u in usages:
            owner = _owner(u.name)
            u.targets = targets.get(owner, {}) if owner else {}
        rows = [[u.name, f"{u.running}/{u.instances}", f"{u.cpu_percent:.1f}",
                 _util(u.cpu_utilization, u.targets.get("cpu")),
                 f"{u.memory_bytes / MIB:.0f}Mi",
                 _util(u.memory_utilization, u.targets.get("memory"))] for u in usages]
        return (["NAME", "READY", "CPU(%)", "CPU/TARGET", "MEMORY", "MEMORY/TARGET"], rows,
                [_wire(u) for u in usages])

    _show(read, output, watch, interval, "No services found.")


@top.command("ecsmservices")
@watching
@pass_cli
def top_ecsmservices(obj: CliContext, output: str, watch: bool, interval: float) -> None:
    """CPU and memory of every ECSMService, summed over its revisions (the ECSM services
    named NAMESPACE.NAME.REVISION), with its ECSMHpa's target."""
    def read() -> tuple[list[str], list[list[Any]], list[dict[str, Any]]]:
        with connect(obj) as cs:
            usages = _service_usage(cs)
        targets = _hpa_targets(obj)
        owners: dict[str, Usage] = {}
        for u in usages:
            owner = _owner(u.name)
            if owner is None:
                continue  # not made by the operator
            namespace, _, name = owner.partition("/")
            total = owners.setdefault(owner, Usage(name=name, namespace=namespace,
                                                   targets=targets.get(owner, {})))
            total.revisions += 1
            total.running += u.running
            total.instances += u.instances
            total.cpu_percent += u.cpu_percent
            total.memory_bytes += u.memory_bytes
            total.memory_limit_bytes += u.memory_limit_bytes
        rows_of = [owners[k].finish() for k in sorted(owners)]
        rows = [[u.namespace, u.name, u.revisions, f"{u.running}/{u.instances}",
                 f"{u.cpu_percent:.1f}", _util(u.cpu_utilization, u.targets.get("cpu")),
                 f"{u.memory_bytes / MIB:.0f}Mi",
                 _util(u.memory_utilization, u.targets.get("memory"))] for u in rows_of]
        return (["NAMESPACE", "NAME", "REVISIONS", "READY", "CPU(%)", "CPU/TARGET", "MEMORY",
                 "MEMORY/TARGET"], rows, [_wire(u) for u in rows_of])

    _show(read, output, watch, interval, "No ECSMServices found in ECSM.")


for _name in ("ecsmservice", "esvc"):
    top.add_command(click.Command(_name, params=top_ecsmservices.params,
                                  callback=top_ecsmservices.callback,
                                  help=top_ecsmservices.help, hidden=True), _name)
for _name, _cmd in (("node", top_nodes), ("no", top_nodes), ("service", top_services),
                    ("svc", top_services)):
    top.add_command(click.Command(_name, params=_cmd.params, callback=_cmd.callback,
                                  help=_cmd.help, hidden=True), _name)


# -- reading -------------------------------------------------------------------------


def _service_usage(cs: Clientset) -> list[Usage]:
    services = sorted(cs.services.list_all(), key=lambda s: s.name)
    usage = {s.id: Usage(name=s.name) for s in services}
    if services:
        for c in cs.containers.list_all_by_service(list(usage)):
            if c.service_id in usage:
                usage[c.service_id].add(c)
    return [u.finish() for u in usage.values()]


def _owner(ecsm_name: str) -> str | None:
    """``namespace/name`` of the ECSMService an ECSM service is a revision of."""
    from ecsm_actors.controllers.service.naming import parse_owned

    namespace, _, rest = ecsm_name.partition(".")
    name = rest.partition(".")[0]
    owned = parse_owned(ecsm_name, namespace, name) if namespace and name else None
    return f"{owned.namespace}/{owned.name}" if owned else None


def _hpa_targets(obj: CliContext) -> dict[str, dict[str, float]]:
    """``namespace/ECSMService`` → {resource: averageUtilization} of the ECSMHpas that
    target it; {} (and a note on stderr) when the registry cannot be read."""
    try:
        client = connection.registry_client(obj)
        items = client.list("ECSMHpa").items
    except EcsmActorsError as e:
        click.echo(f"note: no HPA targets shown: {e}", err=True)
        return {}
    targets: dict[str, dict[str, float]] = {}
    for hpa in items:
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        if ref.get("kind", "ECSMService") != "ECSMService" or not ref.get("name"):
            continue
        namespace = (hpa.get("metadata") or {}).get("namespace") or "default"
        found = targets.setdefault(f"{namespace}/{ref['name']}", {})
        metrics = spec.get("metrics") or [
            {"type": "Resource", "resource": {"name": "cpu", "target": {
                "averageUtilization": DEFAULT_CPU_TARGET}}}]
        for m in metrics if isinstance(metrics, list) else ():
            resource = (m or {}).get("resource") or {}
            value = (resource.get("target") or {}).get("averageUtilization")
            if isinstance(value, int | float) and not isinstance(value, bool):
                found[str(resource.get("name"))] = float(value)
    return targets


# -- printing ------------------------------------------------------------------------


Read = Callable[[], tuple[list[str], list[list[Any]], list[dict[str, Any]]]]


def _show(read: Read, output: str, watch: bool, interval: float, empty: str) -> None:
    tty = sys.stdout.isatty()
    first = True
    while True:
        headers, rows, docs = read()
        if output == "json":
            text = json.dumps(docs, indent=2)
        else:
            text = printers.render_table(headers, rows).rstrip("\n") if rows else empty
        if watch and tty:
            click.echo(f"{CLEAR}Every {interval:g}s  {time.strftime('%H:%M:%S')}\n\n{text}")
        else:
            click.echo(text if first or not watch else "\n" + text)
        if not watch:
            return
        first = False
        time.sleep(interval)


def _wire(u: Usage) -> dict[str, Any]:
    """A row for ``-o json``: the project's camelCase wire names."""
    def camel(key: str) -> str:
        head, *rest = key.split("_")
        return head + "".join(w.capitalize() for w in rest)

    return {camel(k): v for k, v in asdict(u).items()}


def _percent(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _pct(value: float | None) -> str:
    return "<unknown>" if value is None else f"{value:.1f}%"


def _util(value: float | None, target: float | None) -> str:
    current = "<unknown>" if value is None else f"{value:.0f}%"
    return current if target is None else f"{current}/{target:g}%"
