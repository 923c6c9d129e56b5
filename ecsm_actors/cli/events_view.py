"""``ecsm-cli get events`` and the ``Events:`` section of ``describe esvc|hpa``.

Runs in the CLI process. Reads the registry's Event records (LIST_EVENTS; ``-w`` then
follows the ``Event.*`` messages of the events socket), sorted by when they were last
seen, as ``kubectl get events`` shows them: LAST SEEN, TYPE, REASON, OBJECT, COUNT,
MESSAGE. Every string of a record is escaped before it reaches the terminal.
"""

from __future__ import annotations

import re
import time
from typing import Any

import click

from ecsm_actors import api
from ecsm_actors.api.event import EVENT_WORDS
from ecsm_actors.cli import connection, root_options
from ecsm_actors.cli.printers import (
    as_list,
    dump,
    escape,
    format_age,
    parse_time,
    print_table,
    render_table,
)
from ecsm_actors.cli.root_options import CliContext, pass_cli
from ecsm_actors.errors import BadRequest, Invalid
from ecsm_actors.protocol import decode_event_record

HEADERS = ("LAST SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE")
#: Events a ``describe`` shows at most (the most recent).
DESCRIBE_EVENTS = 20
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_CHILD = "Child"


def parse_since(text: str) -> float:
    """``90m``, ``1h30m``, ``2d``, ``45s`` (or plain seconds) → seconds."""
    text = text.strip()
    if text.isdigit():
        return float(text)
    m = _DURATION.match(text)
    if not text or m is None:
        raise click.BadParameter(f"{escape(text)!r} is not a duration like 90m, 1h30m, 2d")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return float(((d * 24 + h) * 60 + mi) * 60 + s)


def parse_for(text: str) -> tuple[str, str]:
    """``esvc/web``, ``ECSMHpa/web``, ``child/registry`` → (kind, name)."""
    word, sep, name = text.partition("/")
    if not sep or not name or "/" in name:
        raise click.BadParameter(f"{escape(text)!r}: expected KIND/NAME (e.g. esvc/web)")
    if word.lower() in ("child", "children"):
        return _CHILD, name
    try:
        return api.resolve_kind(word), name
    except Invalid as e:
        raise click.BadParameter(str(e)) from e


def object_text(record: dict[str, Any]) -> str:
    inv = record.get("involvedObject") or {}
    return f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}"


def row(record: dict[str, Any], now: float | None, all_namespaces: bool) -> list[Any]:
    cells = [format_age(record.get("lastTimestamp"), now), record.get("type", ""),
             record.get("reason", ""), object_text(record), record.get("count", 1),
             record.get("message", "")]
    if all_namespaces:
        cells.insert(0, (record.get("metadata") or {}).get("namespace", ""))
    return [escape(str(c)) for c in cells]


def _last_seen(record: dict[str, Any]) -> float:
    return parse_time(record.get("lastTimestamp")) or 0.0


def table(records: list[dict[str, Any]], *, all_namespaces: bool = False,
          now: float | None = None) -> tuple[list[str], list[list[Any]]]:
    headers = (["NAMESPACE"] if all_namespaces else []) + list(HEADERS)
    ordered = sorted(records, key=_last_seen)
    return headers, [row(r, now, all_namespaces) for r in ordered]


def describe_section(client: Any, kind: str, namespace: str, name: str,
                     now: float | None = None) -> str:
    """The ``Events:`` section ending a ``describe`` (``<none>`` without any; a registry
    without events support says so instead of failing the describe)."""
    list_events = getattr(client, "list_events", None)
    if list_events is None:  # a stand-in registry (tests, tools) that keeps no events
        return "Events:  <none>"
    try:
        records = list_events(namespace, kind=kind, name=name)
    except BadRequest:  # an older registry: no LIST_EVENTS
        return "Events:  <unavailable: the registry keeps no events>"
    if not records:
        return "Events:  <none>"
    recent = sorted(records, key=_last_seen)[-DESCRIBE_EVENTS:]
    rows = [[escape(str(c)) for c in (r.get("type", ""), r.get("reason", ""),
                                      format_age(r.get("lastTimestamp"), now),
                                      f"x{r.get('count', 1)}", r.get("message", ""))]
            for r in recent]
    body = render_table(("TYPE", "REASON", "LAST SEEN", "COUNT", "MESSAGE"), rows)
    return "Events:\n" + "\n".join("  " + line for line in body.splitlines())


@click.command(help="List the events: what the controllers and the supervisor did, "
               "most recently seen last.")
@click.option("-n", "--namespace", default=None, callback=root_options.namespace_default(),
              help="Namespace (default: the global -n, else default).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
@click.option("--for", "for_", default=None, metavar="KIND/NAME",
              help="Only the events of this object (esvc/web, hpa/web, child/registry).")
@click.option("--since", default=None, metavar="DURATION",
              help="Only those seen in the last DURATION (90m, 1h30m, 2d).")
@click.option("-w", "--watch", is_flag=True, help="Then print each event as it is recorded.")
@click.option("-o", "--output", type=click.Choice(("table", "json", "yaml")),
              default="table", show_default=True)
@pass_cli
def get_events_cmd(ctx: CliContext, namespace: str | None, all_namespaces: bool,
                   for_: str | None, since: str | None, watch: bool, output: str) -> None:
    ns = None if all_namespaces else (namespace or "default")
    kind = name = None
    if for_:
        kind, name = parse_for(for_)
        ns = ns or "default"
    after = time.time() - parse_since(since) if since else None
    subscriber = connection.subscriber(ctx, ["Event"]) if watch else None
    try:
        records = connection.registry_client(ctx).list_events(ns, kind=kind, name=name,
                                                             since=after)
        records.sort(key=_last_seen)
        if output in ("json", "yaml"):
            click.echo(dump(as_list(records), output))
        elif records:
            print_table(*table(records, all_namespaces=ns is None))
        elif not watch:
            where = "any namespace" if ns is None else f"namespace {ns}"
            click.echo(f"No events found in {where}.", err=True)
        else:  # nothing yet: the header, then each event as it comes
            click.echo("   ".join((["NAMESPACE"] if ns is None else []) + list(HEADERS)))
        if subscriber is not None:
            _follow(subscriber, ns, kind, name, output)
    finally:
        if subscriber is not None:
            subscriber.close()


def _follow(subscriber: Any, ns: str | None, kind: str | None, name: str | None,
            output: str) -> None:
    """Print each Event record published that matches, until interrupted."""
    while True:
        frames = subscriber.recv_frames(None)
        if frames is None:
            continue
        try:
            decoded = decode_event_record(frames)
        except BadRequest:
            continue
        if decoded is None:
            continue
        _, record = decoded
        inv = record.get("involvedObject") or {}
        if ns is not None and (record.get("metadata") or {}).get("namespace") != ns:
            continue
        if kind is not None and (inv.get("kind") != kind or inv.get("name") != name):
            continue
        if output in ("json", "yaml"):
            click.echo(dump(record, output))
        else:
            click.echo("   ".join(row(record, None, ns is None)))


def get_commands() -> dict[str, click.Command]:
    """``get events`` (and its other spellings, hidden)."""
    commands: dict[str, click.Command] = {}
    for i, word in enumerate(EVENT_WORDS):
        command = click.Command(word, params=get_events_cmd.params,
                                callback=get_events_cmd.callback, help=get_events_cmd.help,
                                hidden=i > 0)
        commands[word] = command
    return commands
