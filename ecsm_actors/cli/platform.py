"""ecsm-cli platform verbs: reality straight from ECSM (ecsm-api.md §10).

Runs in the ecsm-cli process; :mod:`.ecsm_cli` attaches its commands to the shared groups::

    get nodes|services|containers|images      (-o table|wide|json|yaml)
    describe node|service|container|image NAME_OR_ID     (see .platform_describe)
    container start|stop|restart|pause|unpause NAME

Fixes of the Go CLI's quirks (A-21): every list has ``--all/-A`` (default on) plus
``--page``/``--page-size`` (giving ``--page`` alone also selects one page); ``-n`` is always
``--name``; ``--service``/``--node`` accept a name or an id; errors print once (the root
catch-all prints ECSM errors, e.g. an unreachable ECSM names the URL tried, exit 1). Reads
are retried within the command's deadline; a container action is sent once, and a lost
answer says whether it was sent and how to check (:mod:`.platform_retry`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from ecsm_actors.cli import connection, printers
from ecsm_actors.cli.platform_conn import clientset, ecsm_options
from ecsm_actors.cli.platform_format import memory_cell, rfc3339_date, short_uptime
from ecsm_actors.cli.platform_retry import RetryingReads, action_outcome
from ecsm_actors.cli.root_options import CliContext, pass_cli
from ecsm_actors.ecsm.clientset import Clientset
from ecsm_actors.ecsm.types import ContainerAction, ContainerInfo, NodeInfo, Page
from ecsm_actors.errors import ConfigError, EcsmUnavailable

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
OUTPUTS = ("table", "wide", "json", "yaml")


def paging(f: F) -> F:
    """``--all/-A`` (default on) and ``--page``/``--page-size`` on every list."""
    f = click.option("--page-size", type=click.IntRange(min=1), default=100, show_default=True,
                     help="Items per request.")(f)
    f = click.option("--page", type=click.IntRange(min=1), default=None,
                     help="Fetch only this page (implies --no-all).")(f)
    f = click.option("-A", "--all/--no-all", "all_pages", default=True, show_default=True,
                     help="Fetch every page.")(f)
    return f


def output(f: F) -> F:
    return click.option("-o", "--output", type=click.Choice(OUTPUTS), default="table",
                        show_default=True, help="Output format.")(f)


def fetch(all_pages: bool, page: int | None, page_size: int,
          one_page: Callable[[int, int], Page[T]], every: Callable[[int], list[T]]) -> list[T]:
    if all_pages and page is None:
        return every(page_size)
    return list(one_page(page or 1, page_size).items)


def emit(fmt: str, items: Sequence[Any], headers: Sequence[str], row: Callable[[Any], list[Any]],
         empty: str, wide: tuple[Sequence[str], Callable[[Any], list[Any]]]) -> None:
    """Print ``items`` as a table (``wide`` adds columns; ``empty`` replaces an empty table)
    or as the list of their wire dicts in JSON/YAML."""
    if fmt in ("json", "yaml"):
        click.echo(printers.dump([i.raw for i in items], fmt).rstrip("\n"))
        return
    if fmt == "wide":
        headers = [*headers, *wide[0]]
        base, extra = row, wide[1]
        row = lambda i: base(i) + extra(i)  # noqa: E731
    if not items:
        click.echo(empty)
        return
    printers.print_table(headers, [row(i) for i in items])


def request_deadline(obj: CliContext) -> float:
    """The command's deadline for ECSM reads, the one its registry requests have:
    ``--request-timeout``, else the environment's, the context's, the config's
    ``registry.request_deadline`` (:mod:`.connection`)."""
    try:
        return connection.command_target(obj).deadline
    except ConfigError:  # a registry set up wrong is not this command's business
        return obj.request_timeout or obj.config.registry.request_deadline


def connect(obj: CliContext) -> Clientset:
    """A clientset whose reads are retried within the command's deadline and whose
    actions are sent once (:mod:`.platform_retry`)."""
    cs = clientset(obj.config.ecsm)
    cs.rest.transport = RetryingReads(cs.rest.transport, request_deadline(obj))
    return cs


@click.command("nodes")
@click.option("-n", "--name", default=None, help="Name filter (substring).")
@click.option("--basic", is_flag=True, help="Ask for basic info only (basicInfo=true).")
@paging
@output
@ecsm_options
@pass_cli
def get_nodes(obj: CliContext, name: str | None, basic: bool, all_pages: bool,
              page: int | None, page_size: int, output: str) -> None:
    """List ECSM nodes (``-o wide``: MEMORY allocated/capacity from ``node/status``)."""
    with connect(obj) as cs:
        items = fetch(all_pages, page, page_size,
                      lambda n, s: cs.nodes.list(n, s, name, basic),
                      lambda s: cs.nodes.list_all(name, basic, s))
        statuses = {s.id: s for s in cs.nodes.list_status([n.id for n in items])} \
            if output == "wide" and items else {}

    def memory(n: NodeInfo) -> str:
        st = statuses.get(n.id)
        return memory_cell(st.memory_allocated, st.memory_total) if st else "-"

    emit(output, items,
         ["NAME", "STATUS", "ADDRESS", "TYPE", "ARCH", "CONTAINERS", "CREATED", "UPTIME", "ID"],
         lambda n: [n.name, n.status, n.address, n.type, n.arch,
                    f"{n.container_ecsm_running}/{n.container_ecsm_total}", n.created_time,
                    short_uptime(n.up_time), n.id],
         "No nodes found.", (["TLS", "MEMORY"], lambda n: [str(n.tls).lower(), memory(n)]))


@click.command("images")
@click.option("--registry-id", default="local", show_default=True, help="Registry id.")
@click.option("-n", "--name", default=None, help="Name filter.")
@click.option("--os", "os_", default=None, help="OS filter (sylixos, linux).")
@click.option("--author", default=None, help="Author filter.")
@paging
@output
@ecsm_options
@pass_cli
def get_images(obj: CliContext, registry_id: str, name: str | None, os_: str | None,
               author: str | None, all_pages: bool, page: int | None, page_size: int,
               output: str) -> None:
    """List the images of an ECSM registry."""
    with connect(obj) as cs:
        items = fetch(all_pages, page, page_size,
                      lambda n, s: cs.images.list(n, s, registry_id, name, os_, author),
                      lambda s: cs.images.list_all(registry_id, name, os_, author, s))
    emit(output, items, ["NAME", "TAG", "OS", "ARCH", "SIZE(MB)", "CREATED"],
         lambda i: [i.name, i.tag, i.os, i.arch, f"{i.size:.2f}", rfc3339_date(i.created_time)],
         "No images found.",
         (["AUTHOR", "PULLED", "ID"], lambda i: [i.author or "", str(i.pulled).lower(), i.id]))


@click.command("services")
@click.option("-n", "--name", default=None, help="Name filter (substring).")
@click.option("--image-id", default=None, help="Only services of this image id.")
@click.option("--node-id", default=None, help="Only services deployed on this node id.")
@click.option("-l", "--label", default=None, help="Label filter.")
@paging
@output
@ecsm_options
@pass_cli
def get_services(obj: CliContext, name: str | None, image_id: str | None,
                 node_id: str | None, label: str | None, all_pages: bool, page: int | None,
                 page_size: int, output: str) -> None:
    """List ECSM services (reality; desired state is 'get ecsmservices')."""
    with connect(obj) as cs:
        items = fetch(all_pages, page, page_size,
                      lambda n, s: cs.services.list(n, s, name, image_id, node_id, label),
                      lambda s: cs.services.list_all(name, image_id, node_id, label, s))
    emit(output, items, ["NAME", "DEPLOY_STATUS", "POLICY", "ONLINE", "DESIRED", "IMAGE", "ID"],
         lambda s: [s.name, s.status, s.policy, s.instance_online, s.factor, s.image, s.id],
         "No services found.",
         (["NODES"], lambda s: [",".join(n.node_name for n in s.node_list) or "<none>"]))


def find_service_ids(cs: Clientset, key: str) -> list[str]:
    rows = [r for r in cs.services.list_all() if key in (r.id, r.name)]
    if not rows:
        raise click.ClickException(f"service '{key}' not found")
    return [r.id for r in rows]


def find_node_ids(cs: Clientset, key: str) -> list[str]:
    rows = [n for n in cs.nodes.list_all() if key in (n.id, n.name)]
    if not rows:
        raise click.ClickException(f"node '{key}' not found")
    return [n.id for n in rows]


@click.command("containers")
@click.option("-s", "--service", default=None, help="Only containers of this service "
              "(name or id).")
@click.option("--node", default=None, help="Only containers on this node (name or id).")
@click.option("--key", default=None, help="Container name filter (substring).")
@paging
@output
@ecsm_options
@pass_cli
def get_containers(obj: CliContext, service: str | None, node: str | None, key: str | None,
                   all_pages: bool, page: int | None, page_size: int, output: str) -> None:
    """List ECSM containers (all, or of one service, or on one node)."""
    items: list[ContainerInfo] = []
    with connect(obj) as cs:
        if node and not service:
            ids = find_node_ids(cs, node)
            items = fetch(all_pages, page, page_size,
                          lambda n, s: cs.containers.list_by_node(ids, n, s, key),
                          lambda s: cs.containers.list_all_by_node(ids, key, s))
        else:
            ids = find_service_ids(cs, service) if service else [
                r.id for r in cs.services.list_all()]
            if ids:
                items = fetch(all_pages, page, page_size,
                              lambda n, s: cs.containers.list_by_service(ids, n, s, key),
                              lambda s: cs.containers.list_all_by_service(ids, key, s))
            if node:
                items = [c for c in items if node in (c.node_id, c.node_name)]
    emit(output, items, ["NAME", "STATUS", "RESTARTS", "IMAGE", "SERVICE", "NODE"],
         lambda c: [c.name, c.status, c.restart_cnt, f"{c.image_name}:{c.image_version}",
                    c.service_name, c.node_name],
         "No containers found.",
         (["CPU(%)", "MEMORY(MiB)", "ID"],
          lambda c: [f"{c.cpu_usage.total:.2f}", f"{c.memory_usage / (1 << 20):.1f}", c.id]))


@click.group("container")
def container() -> None:
    """Run an action on one ECSM container (fault drills)."""


def _action_command(action: ContainerAction) -> click.Command:
    @ecsm_options
    @click.argument("name")
    @pass_cli
    def run(obj: CliContext, name: str) -> None:
        with connect(obj) as cs:
            try:
                tx = cs.containers.action_by_name(name, action)
            except EcsmUnavailable as e:
                raise action_outcome(e, str(action), name) from e
        if tx.status == "failure":
            detail = tx.data.get("message") if isinstance(tx.data, dict) else None
            raise click.ClickException(f"container {name}: {action} failed"
                                       + (f": {detail}" if detail else ""))
        click.echo(f"container {name}: {action} submitted (transaction {tx.id}, {tx.status})")
    run.__doc__ = f"{action.value.capitalize()} the container NAME."
    return click.command(action.value)(run)


for _action in ContainerAction:
    container.add_command(_action_command(_action))

#: ``get`` commands on ECSM and their hidden aliases (``get no`` for ``get nodes``).
GET_COMMANDS: tuple[tuple[click.Command, tuple[str, ...]], ...] = (
    (get_nodes, ("node", "no")), (get_images, ("image", "img")),
    (get_services, ("service", "svc")), (get_containers, ("container", "co")))
