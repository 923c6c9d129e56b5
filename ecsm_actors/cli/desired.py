"""``ecsm-cli`` verbs on desired state (the registry): apply, create, get, describe, delete,
edit, watch for ECSMService (``esvc``) and ECSMHpa (``hpa``).

Runs in the CLI process; its commands are attached to the root group and the shared
``get`` / ``describe`` groups by :mod:`ecsm_actors.cli.ecsm_cli`. Errors are raised as
:class:`~ecsm_actors.errors.EcsmActorsError` and printed by the CLI's one catch-all
(``error: …``, exit 1); a verb working through several objects reports each failure on
its own line, goes on with the others and exits 1 at the end. Every view shows a VSOA
password as ``<redacted>`` (:mod:`.redaction`); ``get -o yaml|json --show-secrets`` alone
prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ecsm_actors import api
from ecsm_actors.api.echo import clip
from ecsm_actors.cli import (
    batching,
    completion,
    connection,
    desired_views,
    dry_run,
    events_view,
    manifests,
    root_options,
    watching,
)
from ecsm_actors.cli.editing import edit_object
from ecsm_actors.cli.outcome import checked_by
from ecsm_actors.cli.printers import OUTPUT_FORMATS, as_list, dump, escape, print_table
from ecsm_actors.cli.redaction import redact
from ecsm_actors.cli.root_options import CliContext, pass_cli
from ecsm_actors.errors import Aborted, EcsmActorsError, NotFound, RegistryError
from ecsm_actors.protocol import ApplyAction, Event, Op
from ecsm_actors.registry.client import RegistryClient, Subscriber

KIND_WORDS = completion.KIND_WORDS


def registry_client(ctx: CliContext) -> RegistryClient:
    """A client of the command's registry (context, link agent, deadline: see
    :mod:`.connection`), closed when the command ends."""
    return connection.registry_client(ctx)


def label(kind: str, name: str) -> str:
    """``ecsmservice/web``, clipped and escaped as it is printed."""
    return f"{escape(kind.lower())}/{clip(str(name))}"


def _fail_at_end(failures: int) -> None:
    if failures:
        click.get_current_context().exit(1)


def _report(item: str, error: EcsmActorsError) -> None:
    click.echo(f"error: {item}: {escape(str(error))}", err=True)


# -- apply / create / delete -f --------------------------------------------------------

FILE_OPTION = click.option("-f", "--filename", "sources", multiple=True, required=True,
                           help="Manifest file, directory, or - for stdin (repeatable).")
NAMESPACE_OPTION = click.option("-n", "--namespace", default=None,
                                callback=root_options.namespace_default(),
                                help="Namespace (default: the global -n, else default).")


def _with_namespace(obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    meta = obj.get("metadata")
    if namespace and isinstance(meta, dict) and not meta.get("namespace"):
        return {**obj, "metadata": {**meta, "namespace": namespace}}
    return obj


ATOMIC_OPTION = click.option("--atomic", is_flag=True,
                             help="All or none: when any object is refused, none is written.")


def check_command(targets: list[tuple[str, str, str]]) -> str:
    """The command that shows whether writes of ``targets`` (kind, namespace, name)
    were applied."""
    def word(kind: str) -> str:
        return KIND_WORDS[kind][2] if kind in KIND_WORDS else "esvc"

    if len(targets) == 1:
        kind, ns, name = targets[0]
        where = "" if ns == "default" else f" -n {ns}"
        return f"ecsm-cli get {word(kind)} {name}{where}"
    words = sorted({word(k) for k, _, _ in targets})
    return " and ".join(f"ecsm-cli get {w} -A" for w in words)


def _target(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    return (str(obj.get("kind", "")), str(meta.get("namespace") or "default"),
            str(meta.get("name", "")))


def _write_all(ctx: CliContext, labels: list[str], writes: list[dict[str, Any]],
               targets: list[tuple[str, str, str]], atomic: bool,
               done: Callable[[Any], str | None],
               ignored: Callable[[RegistryError], bool] = lambda e: False,
               server_dry_run: bool = False) -> None:
    """Send ``writes`` in BATCH requests (:mod:`.batching`) and print one line per object:
    ``done(result)`` (None: nothing to print) or its error; keep going past a refused
    object, exit 1 at the end if any was. With ``atomic``, a refusal means nothing was
    written: the refused objects are named, then one line says so. An unreachable
    registry stops at once: every other write would fail the same way."""
    if not writes:
        return
    client = registry_client(ctx)
    limits = batching.Limits(max_writes=ctx.config.registry.max_batch_writes,
                             max_bytes=int(ctx.config.registry.max_frame_bytes))
    failures = 0
    with checked_by(check_command(targets)):
        outcomes = batching.send(client, writes, limits, atomic=atomic,
                                 dry_run=server_dry_run)
        suffix = dry_run.SERVER_SUFFIX if server_dry_run else ""
        for item_label, outcome in zip(labels, outcomes, strict=True):
            if outcome.ok:
                line = done(outcome.result)
                if line is not None:
                    click.echo(f"{item_label} {line}{suffix}")
                continue
            assert outcome.error is not None
            if isinstance(outcome.error, Aborted):
                continue
            if ignored(outcome.error) and not atomic:  # atomic: it stopped all the others
                continue
            failures += 1
            _report(item_label, outcome.error)
    if atomic and failures:
        click.echo(f"error: nothing was applied (--atomic): {failures} of {len(writes)} "
                   f"objects refused", err=True)
    _fail_at_end(failures)


def _manifest_writes(ctx: CliContext, sources: tuple[str, ...], namespace: str | None,
                     op: Op, atomic: bool, done: Callable[[Any], str | None],
                     mode: str = "none") -> None:
    items = manifests.load(sources)
    objects = [_with_namespace(m.object, namespace) for m in items]
    if mode == "client":
        verdict = "created" if op is Op.CREATE else "valid"
        _fail_at_end(dry_run.check_locally(ctx.config, [m.label for m in items], objects,
                                           verdict))
        return
    _write_all(ctx, [m.label for m in items], [{"op": op, "object": o} for o in objects],
               [_target(o) for o in objects], atomic, done, server_dry_run=mode == "server")


@click.command("apply")
@FILE_OPTION
@NAMESPACE_OPTION
@ATOMIC_OPTION
@dry_run.DRY_RUN_OPTION
@pass_cli
def apply_cmd(ctx: CliContext, sources: tuple[str, ...], namespace: str | None,
              atomic: bool, dry_run: str) -> None:
    """Create or update objects from manifests (prints created|configured|unchanged)."""
    _manifest_writes(ctx, sources, namespace, Op.APPLY, atomic,
                     lambda result: str(ApplyAction(result["action"])), dry_run)


@click.command("create")
@FILE_OPTION
@NAMESPACE_OPTION
@ATOMIC_OPTION
@dry_run.DRY_RUN_OPTION
@pass_cli
def create_cmd(ctx: CliContext, sources: tuple[str, ...], namespace: str | None,
               atomic: bool, dry_run: str) -> None:
    """Create objects from manifests (an existing object is an error)."""
    _manifest_writes(ctx, sources, namespace, Op.CREATE, atomic, lambda result: "created",
                     dry_run)


@click.command("delete")
@click.argument("kind", required=False, shell_complete=completion.kind_words)
@click.argument("names", nargs=-1, shell_complete=completion.kind_names)
@click.option("-f", "--filename", "sources", multiple=True,
              help="Delete the objects named in these manifests.")
@NAMESPACE_OPTION
@click.option("--ignore-not-found", is_flag=True, help="A missing object is not an error.")
@ATOMIC_OPTION
@pass_cli
def delete_cmd(ctx: CliContext, kind: str | None, names: tuple[str, ...],
               sources: tuple[str, ...], namespace: str | None,
               ignore_not_found: bool, atomic: bool) -> None:
    """Delete objects: KIND NAME... or -f FILE. With finalizers, deletion is requested and
    completes once the controllers have cleaned up."""
    targets: list[tuple[str, str, str]] = []
    if sources:
        if kind or names:
            raise click.UsageError("give either KIND NAME... or -f FILE, not both")
        for m in manifests.load(sources):
            obj = _with_namespace(m.object, namespace)
            meta = obj.get("metadata") or {}
            targets.append((api.resolve_kind(str(obj.get("kind", ""))),
                            meta.get("namespace") or "default", str(meta.get("name", ""))))
    else:
        if not kind or not names:
            raise click.UsageError("expected KIND NAME... (e.g. delete esvc web) or -f FILE")
        resolved = api.resolve_kind(kind)
        targets = [(resolved, namespace or "default", n) for n in names]

    def done(left: dict[str, Any] | None) -> str:
        if left is None:
            return "deleted"
        waiting = ", ".join(left["metadata"].get("finalizers") or ())
        return f"deletion requested (waiting for finalizers: {waiting})"

    _write_all(ctx, [label(k, name) for k, _, name in targets],
               [{"op": Op.DELETE, "kind": k, "namespace": ns, "name": name}
                for k, ns, name in targets], targets, atomic, done,
               ignored=lambda e: ignore_not_found and isinstance(e, NotFound))


# -- get / describe --------------------------------------------------------------------


#: Objects per LIST page of ``get`` (kubectl's ``--chunk-size``).
CHUNK_SIZE = 500


def list_all(client: RegistryClient, kind: str, namespace: str | None,
             chunk_size: int) -> list[dict[str, Any]]:
    """Every object of ``kind``, in pages of ``chunk_size`` (0: one LIST). Each page is a
    request of its own, retried by the client on its own: a connection lost mid-transfer
    costs that page, not the whole list."""
    if chunk_size == 0:
        return client.list(kind, namespace).items
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = client.list(kind, namespace, limit=chunk_size, continue_token=token)
        items += page.items
        if not page.continue_token:
            return items
        token = page.continue_token


def _get_command(kind: str) -> click.Command:
    @click.command(help=f"List {kind} objects, or show one by NAME.")
    @click.argument("name", required=False, shell_complete=completion.object_names(kind))
    @NAMESPACE_OPTION
    @click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
    @click.option("-o", "--output", type=click.Choice(OUTPUT_FORMATS), default="table",
                  show_default=True)
    @click.option("--show-secrets", is_flag=True,
                  help="With -o yaml|json: print passwords instead of <redacted>.")
    @click.option("--chunk-size", type=click.IntRange(min=0), default=CHUNK_SIZE,
                  show_default=True, help="List in pages of this many objects (0: in one "
                  "request); a lost connection costs one page.")
    @pass_cli
    def command(ctx: CliContext, name: str | None, namespace: str | None,
                all_namespaces: bool, output: str, show_secrets: bool,
                chunk_size: int) -> None:
        if show_secrets and output not in ("json", "yaml"):
            raise click.UsageError("--show-secrets goes with -o yaml or -o json")
        client = registry_client(ctx)
        if name:
            items = [client.get(kind, namespace or "default", name)]
        else:
            ns = None if all_namespaces else (namespace or "default")
            items = list_all(client, kind, ns, chunk_size)
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""),
                                      o["metadata"]["name"]))
        if output in ("json", "yaml"):
            if not show_secrets:
                items = [redact(o) for o in items]
            click.echo(dump(items[0] if name else as_list(items), output))
            return
        if not items:
            where = "any namespace" if all_namespaces else f"namespace {namespace or 'default'}"
            click.echo(f"No {KIND_WORDS[kind][0]} found in {where}.", err=True)
            return
        headers, rows = desired_views.table(kind, items, wide=output == "wide",
                                            all_namespaces=all_namespaces and not name)
        print_table(headers, rows)

    return command


def _describe_command(kind: str) -> click.Command:
    @click.command(help=f"Show one {kind} in detail: spec, status, conditions.")
    @click.argument("name", shell_complete=completion.object_names(kind))
    @NAMESPACE_OPTION
    @pass_cli
    def command(ctx: CliContext, name: str, namespace: str | None) -> None:
        client = registry_client(ctx)
        obj = client.get(kind, namespace or "default", name)
        click.echo(desired_views.DESCRIBERS[kind](redact(obj), None))
        click.echo(events_view.describe_section(client, kind, namespace or "default", name))

    return command


def get_commands() -> dict[str, click.Command]:
    """``get WORD`` for each word of each kind (the first shown in help)."""
    commands = {}
    for kind, words in KIND_WORDS.items():
        for i, word in enumerate(words):
            commands[word] = _get_command(kind)
            commands[word].hidden = i > 0
    commands.update(events_view.get_commands())
    return commands


def describe_commands() -> dict[str, click.Command]:
    """``describe WORD`` for each word of each kind (the singular shown in help)."""
    commands = {}
    for kind, words in KIND_WORDS.items():
        for i, word in enumerate(words):
            commands[word] = _describe_command(kind)
            commands[word].hidden = i != 1
    return commands


# -- edit ------------------------------------------------------------------------------


@click.command("edit")
@click.argument("kind", shell_complete=completion.kind_words)
@click.argument("name", shell_complete=completion.kind_names)
@NAMESPACE_OPTION
@pass_cli
def edit_cmd(ctx: CliContext, kind: str, name: str, namespace: str | None) -> None:
    """Edit an object in $EDITOR; saved changes are written (re-opened on an error)."""
    resolved = api.resolve_kind(kind)
    client = registry_client(ctx)
    edit_object(client, resolved, namespace or "default", name)


# -- watch -----------------------------------------------------------------------------


def _event_line(event: Event, output: str) -> str:
    if output in ("json", "yaml"):
        doc = {"type": str(event.type), "resourceVersion": event.resource_version,
               "object": event.object and redact(event.object)}
        return dump(doc, "json").replace("\n", "") if output == "json" else \
            dump(doc, "yaml") + "\n---"
    meta = (event.object or {}).get("metadata") or {}
    return (f"{event.seq:<8} {str(event.type):<9} {label(event.kind, meta.get('name', '?'))}"
            f"  namespace={meta.get('namespace', '?')} generation={meta.get('generation')}")


def subscriber(ctx: CliContext, kinds: list[str]) -> Subscriber:
    """A subscriber to the command's registry events of ``kinds`` (context, link agent:
    see :mod:`.connection`), closed when the command ends."""
    return connection.subscriber(ctx, kinds)


def _resume_file(ctx: CliContext) -> watching.ResumeFile:
    return watching.ResumeFile(ctx.config.run_dir / "cli-watch.json")


@click.command("watch")
@click.argument("kind", shell_complete=completion.kind_words)
@click.option("--since", type=click.IntRange(min=0), default=None,
              help="Replay every change after this resourceVersion first.")
@click.option("--resume", is_flag=True,
              help="Start where the last watch of this kind and namespace stopped.")
@NAMESPACE_OPTION
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
@click.option("-o", "--output", type=click.Choice(("line", "json", "yaml")), default="line",
              show_default=True)
@click.option("--count", type=int, default=None,
              help="Exit after this many events (at the end of their revision).")
@click.option("--timeout", type=float, default=None,
              help="Exit after this many seconds without an event.")
@pass_cli
def watch_cmd(ctx: CliContext, kind: str, since: int | None, resume: bool,
              namespace: str | None, all_namespaces: bool, output: str, count: int | None,
              timeout: float | None) -> None:
    """Print changes of a kind as they are committed (Ctrl-C to stop). Every change is
    printed once, across link stalls and reconnections; on exit, the resourceVersion to
    resume from is printed on stderr."""
    if since is not None and resume:
        raise click.UsageError("give either --since or --resume, not both")
    resolved = api.resolve_kind(kind)
    client = registry_client(ctx)
    wanted_ns = None if all_namespaces else (namespace or "default")
    scope = f"{resolved}/{wanted_ns or '*'}"
    resume_file = _resume_file(ctx)
    since_epoch = resume_file.epoch(client.endpoint)
    if resume:
        position = resume_file.position(client.endpoint, scope)
        if position is None:
            click.echo(f"no earlier watch of {kind} to resume: watching from now", err=True)
        else:
            since_epoch, since = position
    options = watching.WatchOptions(
        kind=resolved, namespace=wanted_ns, since=since, since_epoch=since_epoch,
        strict=not resume, count=count, timeout=timeout,
        heartbeat_interval=ctx.config.registry.heartbeat_interval)
    engine = watching.Watch(
        client, lambda: subscriber(ctx, [resolved]), options,
        emit=lambda e: click.echo(_event_line(e, output)),
        notice=lambda line: click.echo(line, err=True))
    try:
        engine.run()
    finally:
        if engine.last is not None:
            resume_file.save(client.endpoint, engine.epoch, scope, engine.last)
            where = " -A" if all_namespaces else (f" -n {namespace}" if namespace else "")
            click.echo(f"resume with: ecsm-cli watch {escape(kind)}{escape(where)} "
                       f"--since {engine.last}", err=True)
