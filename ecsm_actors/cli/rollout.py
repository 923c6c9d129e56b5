"""``ecsm-cli rollout status|history|undo ESVC [-n NS]``: watch, list and revert the
template revisions of an ECSMService.

Runs in the CLI process; the ``rollout`` group, attached to the root group by
:mod:`ecsm_actors.cli.ecsm_cli`. Desired state comes from the registry; ``history`` also
asks ECSM for each revision's factor and readiness (and says so when ECSM cannot be
reached instead of failing). The revision templates live in the object's
``ecsm.sh/revision-<hash>`` annotations (:mod:`ecsm_actors.controllers.service.history`),
so ``undo`` is an ordinary registry update of ``spec.template``, with conflict retry. The
update carries the resourceVersion it was computed from, and the client retries it with
one request id: an undo whose answer was lost is answered with its first outcome and
reports the same revision, never undoes itself.
A revision's VSOA password is not kept: ``history --revision N`` shows ``<redacted>`` and
``undo`` keeps the password the object has now (the rules are in that module's docstring).
"""

from __future__ import annotations

import time
from typing import Any

import click
import yaml

from ecsm_actors.api.secrets import password_file_of, password_of, redact_template
from ecsm_actors.cli import completion, root_options
from ecsm_actors.cli.desired import registry_client
from ecsm_actors.cli.outcome import checked_by
from ecsm_actors.cli.printers import escape, print_table
from ecsm_actors.cli.root_options import CliContext, pass_cli
from ecsm_actors.controllers.service import history
from ecsm_actors.controllers.service.naming import owned_prefix, parse_owned
from ecsm_actors.errors import Conflict, EcsmActorsError, Invalid

KIND = "ECSMService"
NAMESPACE = click.option("-n", "--namespace", default=None,
                         callback=root_options.namespace_default("default"),
                         help="Namespace of the ECSMService (default: the global -n, else "
                         "default).")


@click.group()
def rollout() -> None:
    """Manage the rollout of an ECSMService: status, history, undo."""


def _desired(obj: dict[str, Any]) -> int:
    strategy = (obj.get("spec") or {}).get("deploymentStrategy") or {}
    if strategy.get("type") == "Static":
        return len(strategy.get("nodes") or [])
    return int(strategy.get("replicas") or 0)


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == type_:
            return dict(c)
    return {}


def rollout_state(obj: dict[str, Any]) -> tuple[bool, str]:
    """(done, the line to print) for one observation of the object."""
    name = (obj.get("metadata") or {}).get("name")
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        raise click.ClickException(f'ecsmservice "{name}" is being deleted')
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return False, "Waiting for the rollout to be observed by the service controller..."
    progressing = _condition(obj, "Progressing")
    if progressing.get("status") == "False":
        return False, f"Waiting: {progressing.get('reason')}: {progressing.get('message')}"
    desired = _desired(obj)
    replicas = int(status.get("replicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < desired:
        return False, (f"Waiting for rollout to finish: {updated} out of {desired} new "
                       f"replicas have been updated...")
    if replicas > updated:
        return False, (f"Waiting for rollout to finish: {replicas - updated} old replicas "
                       f"are pending termination...")
    if available < updated:
        return False, (f"Waiting for rollout to finish: {available} of {updated} updated "
                       f"replicas are available...")
    return True, f'ecsmservice "{name}" successfully rolled out'


@rollout.command("status")
@click.argument("name", shell_complete=completion.object_names(KIND))
@NAMESPACE
@click.option("--timeout", type=float, default=600.0, show_default=True,
              help="Give up after this many seconds (0: wait forever).")
@click.option("--watch/--no-watch", default=True,
              help="Wait until the rollout completes (default) or print once.")
@click.option("--interval", type=float, default=0.5, hidden=True)
@pass_cli
def status_cmd(ctx: CliContext, name: str, namespace: str, timeout: float, watch: bool,
               interval: float) -> None:
    """Show the rollout's progress; with --watch (default) wait until it completes."""
    client = registry_client(ctx)
    deadline = time.monotonic() + timeout if timeout > 0 else None
    last = None
    while True:
        done, line = rollout_state(client.get(KIND, namespace, name))
        if line != last:
            click.echo(escape(line))  # it quotes a condition message
            last = line
        if done or not watch:
            return
        if deadline is not None and time.monotonic() > deadline:
            raise click.ClickException(f"timed out after {timeout:g}s waiting for the rollout "
                                       f'of ecsmservice "{name}"')
        time.sleep(interval)


def _ecsm_revisions(ctx: CliContext, namespace: str, name: str) -> dict[str, Any] | str:
    """Revision → ECSM row, or a one-line reason why ECSM could not be asked."""
    try:
        from ecsm_actors.cli.platform import connect  # reads retried within the deadline

        with connect(ctx) as ecsm:
            rows = ecsm.services.list_all(name=owned_prefix(namespace, name))
    except EcsmActorsError as e:
        return f"ECSM not reachable: {e}"
    out: dict[str, Any] = {}
    for row in rows:
        owned = parse_owned(row.name, namespace, name)
        if owned is not None:
            out[owned.revision] = row
    return out


@rollout.command("history")
@click.argument("name", shell_complete=completion.object_names(KIND))
@NAMESPACE
@click.option("--revision", "number", type=int, default=None,
              help="Show the template of this revision number.")
@pass_cli
def history_cmd(ctx: CliContext, name: str, namespace: str, number: int | None) -> None:
    """List the recorded revisions with their image and their ECSM factor."""
    obj = registry_client(ctx).get(KIND, namespace, name)
    current = history.current_revision(obj)
    records = history.records((obj.get("metadata") or {}).get("annotations"))
    if number is not None:
        match = [r for r in records.values() if r.number == number]
        if not match:
            raise click.ClickException(f"revision {number} not found")
        click.echo(yaml.safe_dump({"revision": number, "hash": match[0].revision,
                                   "template": redact_template(match[0].template)},
                                  sort_keys=False), nl=False)
        return
    ecsm = _ecsm_revisions(ctx, namespace, name)
    rows = []
    for rec in sorted(records.values(), key=lambda r: r.number):
        row = ecsm.get(rec.revision) if isinstance(ecsm, dict) else None
        rows.append((rec.number, rec.revision, rec.template.get("image", ""),
                     "-" if row is None else row.factor,
                     "-" if row is None else row.instance_online,
                     "yes" if rec.revision == current else "-"))
    click.echo(f"ecsmservice/{name}")
    print_table(["REVISION", "HASH", "IMAGE", "FACTOR", "READY", "CURRENT"], rows)
    if isinstance(ecsm, str):
        click.echo(f"({ecsm})", err=True)


def _only_the_secret(number: int, template: dict[str, Any]) -> str:
    """Why undo cannot return to revision ``number``, whose template is the current one."""
    path = password_file_of(template)
    if path is None:
        return (f"revision {number} differs from the current template only by its VSOA "
                f"password, which revisions do not keep: re-apply the template with that "
                f"password (ecsm-cli apply -f)")
    return (f"revision {number} differs from the current template only by the content of "
            f"its passwordFile {path}: write that password back into the file")


@rollout.command("undo")
@click.argument("name", shell_complete=completion.object_names(KIND))
@NAMESPACE
@click.option("--to-revision", type=int, default=None,
              help="Revision number to return to (default: the previous one).")
@pass_cli
def undo_cmd(ctx: CliContext, name: str, namespace: str, to_revision: int | None) -> None:
    """Restore the previous (or the given) revision's template."""
    client = registry_client(ctx)
    intended: tuple[history.RevisionRecord, dict[str, Any], bool | None] | None = None
    for _ in range(5):
        obj = client.get(KIND, namespace, name)
        spec = dict(obj.get("spec") or {})
        current = history.current_revision(obj)
        annotations = (obj.get("metadata") or {}).get("annotations")
        if intended is not None and spec.get("template") == intended[1]:
            # The conflict was this very undo, landed before its answer was lost: undoing
            # "the previous revision" again would undo the undo.
            click.echo(_rolled_back(name, *intended))
            return
        if to_revision is None:
            target = history.previous(annotations, current)
            if target is None:
                raise click.ClickException(f'ecsmservice "{name}" has no previous revision')
        else:
            target = next((r for r in history.records(annotations).values()
                           if r.number == to_revision), None)
            if target is None:
                raise click.ClickException(f"revision {to_revision} not found")
        if target.revision == current:
            click.echo(f"ecsmservice/{name} skipped rollback (current template already "
                       f"matches revision {target.number})")
            return
        restored = history.restore(target, spec.get("template") or {})
        if restored is None:
            raise click.ClickException(
                f"revision {target.number} had a VSOA password, which revisions do not keep, "
                f"and the object has no inline one now: re-apply that template with its "
                f"password (ecsm-cli apply -f)")
        same = history.same_revision(target, restored, name)
        if restored == spec.get("template"):
            raise click.ClickException(_only_the_secret(target.number, restored))
        spec["template"] = restored
        intended = (target, restored, same)
        check = f"ecsm-cli rollout history {name}" + (
            "" if namespace == "default" else f" -n {namespace}")
        try:
            with checked_by(check):  # obj carries the resourceVersion it was read at
                client.update({**obj, "spec": spec})
        except Conflict:
            continue
        except Invalid as e:
            raise click.ClickException(f"revision {target.number} cannot be applied: {e}") \
                from e
        click.echo(_rolled_back(name, *intended))
        return
    raise click.ClickException(f'ecsmservice "{name}" keeps changing; try again')


def _rolled_back(name: str, target: history.RevisionRecord, restored: dict[str, Any],
                 same: bool | None) -> str:
    if same is False and password_of(restored) is not None:
        return (f"ecsmservice/{name} rolled back to the template of revision "
                f"{target.number}, keeping the current VSOA password (revision "
                f"{target.number} had another one)")
    return f"ecsmservice/{name} rolled back to revision {target.number} ({target.revision})"

