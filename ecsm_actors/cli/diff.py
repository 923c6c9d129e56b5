"""``ecsm-cli diff -f FILE|DIR|-``: what ``apply`` would change, as a unified diff.

Runs in the CLI process. The manifests' objects go to the registry as one server-side dry
run APPLY each (in BATCH requests, :mod:`.batching`): the registry defaults and validates
them and answers what it would store, storing nothing. For an object it would create, the
diff is against nothing; for one it would configure, against the live object (one GET);
for one unchanged, there is no diff. Both sides are shown as YAML, with secrets redacted as
``get`` shows them and ``metadata.resourceVersion`` left out (a dry run has none of its
own), each line escaped as every human-readable output is.

Exit codes as ``kubectl diff``: 0 nothing would change, 1 something would, 2 (>1) an error
— a refused object (after the diffs of the others), a manifest that cannot be read, an
unreachable registry.
"""

from __future__ import annotations

import difflib
from typing import Any

import click

from ecsm_actors.cli import batching, connection, manifests, root_options
from ecsm_actors.cli.printers import dump, escape
from ecsm_actors.cli.redaction import redact
from ecsm_actors.cli.root_options import CliContext, pass_cli
from ecsm_actors.errors import EcsmActorsError, NotFound
from ecsm_actors.protocol import ApplyAction, Op

#: Exit code of an error (``kubectl diff``: greater than 1).
ERROR = 2


def _with_namespace(obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    meta = obj.get("metadata")
    if namespace and isinstance(meta, dict) and not meta.get("namespace"):
        return {**obj, "metadata": {**meta, "namespace": namespace}}
    return obj


def shown(obj: dict[str, Any] | None) -> list[str]:
    """``obj`` as the lines of the diff (none for an absent object)."""
    if obj is None:
        return []
    obj = redact(obj)
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return [escape(line) for line in dump({**obj, "metadata": meta}, "yaml").splitlines()]


def unified(name: str, live: dict[str, Any] | None, merged: dict[str, Any]) -> list[str]:
    """The unified diff of ``live`` → ``merged``, files named as ``kubectl diff`` does."""
    return list(difflib.unified_diff(shown(live), shown(merged), fromfile=f"live/{name}",
                                     tofile=f"merged/{name}", lineterm=""))


def _file_name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return escape(".".join(str(p) for p in (obj.get("apiVersion", "").replace("/", "."),
                                            obj.get("kind", ""), meta.get("namespace", ""),
                                            meta.get("name", ""))))


def diff_objects(ctx: CliContext, sources: tuple[str, ...], namespace: str | None) -> int:
    """Print the diffs; return the exit code."""
    items = manifests.load(sources)
    objects = [_with_namespace(m.object, namespace) for m in items]
    if not objects:
        return 0
    client = connection.registry_client(ctx)
    limits = batching.Limits(max_writes=ctx.config.registry.max_batch_writes,
                             max_bytes=int(ctx.config.registry.max_frame_bytes))
    writes = [{"op": Op.APPLY, "object": o} for o in objects]
    changed = errors = 0
    for item, outcome in zip(items, batching.send(client, writes, limits, dry_run=True),
                             strict=True):
        if not outcome.ok:
            assert outcome.error is not None
            errors += 1
            click.echo(f"error: {item.label}: {escape(str(outcome.error))}", err=True)
            continue
        action, merged = ApplyAction(outcome.result["action"]), outcome.result["object"]
        if action is ApplyAction.UNCHANGED:
            continue
        live = None
        if action is ApplyAction.CONFIGURED:
            meta = merged["metadata"]
            try:
                live = client.get(merged["kind"], meta["namespace"], meta["name"])
            except NotFound:
                live = None  # deleted since the dry run: it would be created
        lines = unified(_file_name(merged), live, merged)
        if lines:
            changed += 1
            click.echo("\n".join(lines))
    return ERROR if errors else (1 if changed else 0)


@click.command("diff")
@click.option("-f", "--filename", "sources", multiple=True, required=True,
              help="Manifest file, directory, or - for stdin (repeatable).")
@click.option("-n", "--namespace", default=None, callback=root_options.namespace_default(),
              help="Namespace (default: the global -n, else default).")
@pass_cli
def diff_cmd(ctx: CliContext, sources: tuple[str, ...], namespace: str | None) -> None:
    """Show what apply would change, as a unified diff of the defaulted objects (the
    registry's dry run against the live object). Exit 0: no change, 1: changes, 2: an
    error."""
    try:
        code = diff_objects(ctx, sources, namespace)
    except EcsmActorsError as e:
        click.echo(f"error: {escape(str(e))}", err=True)
        code = ERROR
    click.get_current_context().exit(code)
