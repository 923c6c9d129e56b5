"""Reading manifests for ``ecsm-cli apply|create|delete -f``: files, directories, stdin.

Runs in the CLI process only. A source is a file, a directory (its ``*.yaml``, ``*.yml``
and ``*.json`` files, sorted, not recursive) or ``-`` (stdin). A file holds one or more
YAML documents (JSON is YAML); a document that is a list, or a ``kind: List`` with
``items``, contributes each item. Empty documents are skipped. Anything unreadable raises
:class:`~ecsm_actors.errors.ManifestError` naming the file and, for syntax errors, the line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from ecsm_actors.errors import ManifestError

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """One object read from ``source`` (its ``index``-th document, from 1)."""

    object: dict[str, Any]
    source: str
    index: int

    @property
    def label(self) -> str:
        """``ecsmservice/web`` (or where it came from, when it has no kind/name)."""
        kind = self.object.get("kind")
        meta = self.object.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(kind, str) and isinstance(name, str):
            return f"{kind.lower()}/{name}"
        return f"{self.source} (document {self.index})"


def parse(text: str, source: str) -> list[Manifest]:
    """Every object of a YAML/JSON text."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = " ".join(p for p in (e.context, e.problem) if p)
        raise ManifestError(f"{where}: invalid YAML: {problem}") from e
    except yaml.YAMLError as e:
        raise ManifestError(f"{source}: invalid YAML: {e}") from e
    out: list[Manifest] = []
    for n, doc in enumerate(docs, start=1):
        for item in _items(doc, source, n):
            out.append(Manifest(object=item, source=source, index=n))
    return out


def _items(doc: Any, source: str, n: int) -> Iterable[dict[str, Any]]:
    if doc is None:
        return []
    if isinstance(doc, dict) and doc.get("kind") == "List" and "items" in doc:
        doc = doc["items"]
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            if not isinstance(item, dict):
                raise ManifestError(f"{source}: document {n}, item {i}: expected a mapping")
        return doc
    if not isinstance(doc, dict):
        raise ManifestError(f"{source}: document {n}: expected a mapping, "
                            f"got {type(doc).__name__}")
    return [doc]


def files_of(source: str) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        if not found:
            raise ManifestError(f"{source}: no {', '.join(SUFFIXES)} files in the directory")
        return found
    return [path]


def load(sources: Iterable[str], stdin: TextIO | None = None) -> list[Manifest]:
    """Every object of every source, in order."""
    out: list[Manifest] = []
    for source in sources:
        if source == "-":
            out += parse((stdin or sys.stdin).read(), "<stdin>")
            continue
        for path in files_of(source):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                raise ManifestError(f"{path}: cannot read: {reason}") from e
            out += parse(text, str(path))
    return out
