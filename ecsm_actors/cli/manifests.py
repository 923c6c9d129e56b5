"""Reading manifests for ``ecsm-cli apply|create|delete -f``: files, directories, stdin.

Runs in the CLI process only. A source is a file, a directory (its ``*.yaml``, ``*.yml``
and ``*.json`` files, sorted, not recursive) or ``-`` (stdin). A file holds one or more
YAML documents (JSON is YAML); a document that is a list, or a ``kind: List`` with
``items``, contributes each item. Empty documents are skipped. Anything unreadable raises
:class:`~ecsm_actors.errors.ManifestError` naming the file and, for syntax errors, the line.

Hostile input is refused in bounded time and memory, with one line naming the place:

* at most :data:`MAX_MANIFEST_BYTES` are read from a file or stdin (``-f /dev/zero``);
* documents nested more than :data:`MAX_DEPTH` deep, or holding more than
  :data:`MAX_VALUES` values per file with every use of an alias counted (a billion-laughs
  bomb), or an alias inside its own anchor;
* integers beyond 64 bits (msgpack cannot carry them), mapping keys that are not strings,
  and the tags ``!!set``, ``!!omap``, ``!!pairs`` and ``!!binary``.

Like ``kubectl``, a YAML timestamp (``2024-01-01``) stays the string it is written as: where
the API wants a string it is one, elsewhere validation names the field.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from ecsm_actors.api import echo
from ecsm_actors.errors import ManifestError

SUFFIXES = (".yaml", ".yml", ".json")

#: Most bytes read from one manifest file or stdin.
MAX_MANIFEST_BYTES = 8 << 20
#: Deepest nesting of a document (an API object needs about ten levels).
MAX_DEPTH = 64
#: Most values (scalars, lists, maps) in one file, aliases counted at every use.
MAX_VALUES = 200_000
#: Characters of an integer scalar (2**64 in binary with its "0b" and some "_").
_MAX_INT_TEXT = 80
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_UNSUPPORTED_TAGS = {"set": "a list", "omap": "a mapping", "pairs": "a mapping",
                     "binary": "a string"}


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a manifest may not hold (too deep, too many values, a set...)."""


class _Loader(yaml.SafeLoader):
    """The safe loader with the bounds of this module."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._composed = 0
        self._expanded = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._depth += 1
        self._composed += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(None, None, f"nested more than {MAX_DEPTH} levels deep",
                               self.peek_event().start_mark)
            if self._composed > MAX_VALUES:
                raise _Refused(None, None, f"more than {MAX_VALUES} values in one file",
                               self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Node:
        node = super().compose_document()
        self._expanded += _expanded_size(node, MAX_VALUES - self._expanded)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        for key_node, _ in node.value:
            key = self.constructed_objects.get(key_node)
            if not isinstance(key, str):
                raise _Refused(None, None, f"a mapping key must be a string, got "
                               f"{echo.describe(key)} (quote it)", key_node.start_mark)
        return mapping

    def construct_bounded_int(self, node: Node) -> int:
        text = str(node.value)
        if len(text) > _MAX_INT_TEXT:
            raise _Refused(None, None, "integer out of range (at most 64 bits)",
                           node.start_mark)
        value = self.construct_yaml_int(node)
        if not _INT_MIN <= value <= _INT_MAX:
            raise _Refused(None, None, "integer out of range (at most 64 bits)",
                           node.start_mark)
        return value

    def construct_timestamp_text(self, node: Node) -> str:
        return str(self.construct_scalar(node))  # type: ignore[arg-type]

    def construct_unsupported(self, node: Node) -> Any:
        name = node.tag.rsplit(":", 1)[-1]
        raise _Refused(None, None, f"unsupported YAML tag !!{name} "
                       f"(write {_UNSUPPORTED_TAGS[name]} instead)", node.start_mark)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_bounded_int)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_timestamp_text)
for _tag in _UNSUPPORTED_TAGS:
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _Loader.construct_unsupported)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _expanded_size(root: Node, budget: int) -> int:
    """Values of the document ``root`` with every use of an alias counted (a node shared
    through aliases counts once per use), without expanding anything: each node is
    visited once, iteratively. Refuses a total above ``budget``, an expanded depth
    beyond :data:`MAX_DEPTH` and an alias inside its own anchor."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _children(node)
        if finished:
            open_.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > budget:
                raise _Refused(None, None, f"aliases expand to more than {MAX_VALUES} "
                               "values in one file", node.start_mark)
            if depth[key] > MAX_DEPTH:
                raise _Refused(None, None, f"aliases nest more than {MAX_DEPTH} levels deep",
                               node.start_mark)
            continue
        if key in size:
            continue
        open_.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise _Refused(None, None, "an alias refers to a node that contains it",
                               child.start_mark)
            if id(child) not in size:
                stack.append((child, False))
    return size[id(root)]


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """One object read from ``source`` (its ``index``-th document, from 1)."""

    object: dict[str, Any]
    source: str
    index: int

    @property
    def label(self) -> str:
        """``ecsmservice/web`` (or where it came from, when it has no kind/name); clipped
        and escaped, as it is printed."""
        kind = self.object.get("kind")
        meta = self.object.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(kind, str) and isinstance(name, str):
            return f"{echo.clip(kind.lower())}/{echo.clip(name)}"
        return f"{echo.escape(self.source)} (document {self.index})"


def parse(text: str, source: str) -> list[Manifest]:
    """Every object of a YAML/JSON text (at most :data:`MAX_MANIFEST_BYTES` of it)."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{source}: {_too_large()}")
    try:
        docs = list(yaml.load_all(text, Loader=_Loader))  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = _one_line(" ".join(p for p in (e.context, e.problem) if p))
        if isinstance(e, _Refused):
            raise ManifestError(f"{where}: {problem}") from e
        raise ManifestError(f"{where}: invalid YAML: {problem}") from e
    except yaml.YAMLError as e:
        raise ManifestError(f"{source}: invalid YAML: {_one_line(str(e))}") from e
    except RecursionError as e:  # a bound above was not enough: still one clear line
        raise ManifestError(f"{source}: nested too deeply") from e
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


def _one_line(text: str) -> str:
    return echo.clip(" ".join(text.split()), 300)


def _too_large() -> str:
    return (f"larger than {MAX_MANIFEST_BYTES >> 20} MiB; split it into several files "
            "(a manifest is read whole)")


def _read_stdin(stream: TextIO) -> str:
    binary = getattr(stream, "buffer", None)
    try:
        data = (binary or stream).read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"<stdin>: {_too_large()}")
        return data.decode("utf-8") if isinstance(data, bytes) else data
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"<stdin>: cannot read: {_reason(e)}") from e


def _read_file(path: Path) -> str:
    """The text of a file, read with a bound: a device or a pipe may never end."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{path}: {_too_large()}")
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: cannot read: {_reason(e)}") from e


def _reason(e: OSError | UnicodeDecodeError) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else _one_line(str(e))


def load(sources: Iterable[str], stdin: TextIO | None = None) -> list[Manifest]:
    """Every object of every source, in order."""
    out: list[Manifest] = []
    for source in sources:
        if source == "-":
            out += parse(_read_stdin(stdin or sys.stdin), "<stdin>")
            continue
        for path in files_of(source):
            out += parse(_read_file(path), str(path))
    return out
