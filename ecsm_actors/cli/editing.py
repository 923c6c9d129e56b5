"""``ecsm-cli edit``: an object in ``$EDITOR`` (``$VISUAL`` first), written back on save.

Runs in the CLI process. The saved text is sent as an ``UPDATE`` carrying the
resourceVersion it was read at (put back if the user deleted it), so a concurrent change —
or this very edit, landed before its answer was lost — is never overwritten silently
(a retry of the same request is answered with its first outcome): a
conflict, an invalid object or a YAML error re-opens the editor with the user's text and
the error as ``#`` comments on top. For a conflict the text gets the current
resourceVersion, and saving again then deliberately overwrites the other change. Saving
an unchanged or empty file cancels the edit.

Secrets: the buffer shows a VSOA password as ``<redacted>`` (:mod:`.redaction`), and a
password left as ``<redacted>`` is written back as the value stored when the object was
read (re-read on a conflict); replacing it sets a new password, deleting the line removes
it. A buffer re-opened after an error shows the user's own text again, never a stored
password.
"""

from __future__ import annotations

from typing import Any

import click

from ecsm_actors.cli import manifests
from ecsm_actors.cli.outcome import checked_by
from ecsm_actors.cli.printers import dump
from ecsm_actors.cli.redaction import keep_stored, redact
from ecsm_actors.errors import Conflict, Invalid, ManifestError, RegistryError, Unavailable
from ecsm_actors.registry.client import RegistryClient

HEADER = (
    "# Please edit the object below. Lines beginning with a '#' will be ignored,\n"
    "# and an empty file will abort the edit. If an error occurs while saving this file\n"
    "# will be reopened with the relevant failures.\n"
    "#\n"
)


def strip_comments(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.lstrip().startswith("#"))


def _identity(obj: dict[str, Any]) -> tuple[Any, Any, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    return obj.get("kind"), meta.get("namespace") or "default", meta.get("name")


def edit_object(client: RegistryClient, kind: str, namespace: str, name: str) -> None:
    obj = client.get(kind, namespace, name)
    stored = obj  # where a password left as <redacted> comes from
    label = f"{kind.lower()}/{name}"
    original = dump(redact(obj), "yaml") + "\n"
    text, errors = original, list[str]()
    while True:
        buffer = HEADER + "".join(f"# {line}\n" for line in errors) + text
        edited = click.edit(buffer, extension=".yaml", require_save=True)
        body = strip_comments(edited) if edited is not None else ""
        if not body.strip() or body.strip() == original.strip():
            click.echo("Edit cancelled, no changes made.")
            return
        text = body
        try:
            docs = manifests.parse(body, "the edited object")
            if len(docs) != 1:
                raise ManifestError(f"expected exactly one object, found {len(docs)}")
            new = docs[0].object
            if _identity(new) != _identity(obj):
                raise Invalid("kind, namespace and name cannot be changed by edit")
            if not new["metadata"].get("resourceVersion"):  # never an unconditional write
                new["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
            with checked_by(f"ecsm-cli get {kind.lower()} {name}"
                            + ("" if namespace == "default" else f" -n {namespace}")):
                saved = client.update(keep_stored(new, stored))
        except Conflict as e:
            current = stored = client.get(kind, namespace, name)
            rv = current["metadata"]["resourceVersion"]
            new["metadata"]["resourceVersion"] = rv
            text = dump(new, "yaml") + "\n"
            errors = [f"error: {e}",
                      f"The object changed while you edited it (now resourceVersion {rv}).",
                      "Your edits are kept below; saving again overwrites that change."]
            continue
        except Unavailable:
            raise
        except (ManifestError, RegistryError) as e:
            errors = [f"error: {line}" for line in str(e).split("; ")]
            continue
        if saved["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]:
            click.echo(f"{label} unchanged")
        else:
            click.echo(f"{label} edited")
        return
