"""A parsed simulator request, paging, and the router that matches routes (§2).

Runs inside the simulator process. Path segments are percent-decoded (§1.1); query keys
accept the encoded and raw bracket forms, and ``serviceIds`` without brackets (§1.4).
Fixed routes are matched before parameterised ones (the precedence of §2): a dict lookup
for fixed paths, then the patterns of the same length in table order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from ecsm_actors.ecsm.simulator.errors import SimError, bad_request

Handler = Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class Request:
    method: str
    parts: tuple[str, ...]
    query: dict[str, list[str]]
    body: Any

    @classmethod
    def parse(cls, method: str, path: str, qs: str, body: Any, prefix: int) -> Request:
        parts = tuple(unquote(p) for p in path.split("/")[prefix:] if p)
        query = parse_qs(qs, keep_blank_values=True) if qs else {}
        return cls(method=method, parts=parts, query=query, body=body)

    def arg(self, key: str) -> str | None:
        values = self.query.get(key)
        return values[0] if values else None

    def args(self, key: str) -> list[str]:
        return self.query.get(f"{key}[]", []) + self.query.get(key, [])

    def int_arg(self, key: str, default: int | None = None) -> int:
        value = self.arg(key)
        if value is None or value == "":
            if default is None:
                raise bad_request(f"{key}: required")
            return default
        try:
            return int(value)
        except ValueError as e:
            raise bad_request(f"{key}: expected an integer, got '{value}'") from e

    def bool_arg(self, key: str) -> bool:
        return (self.arg(key) or "").lower() == "true"


def page(req: Request, items: Sequence[Any], render: Callable[[Any], Any]) -> dict[str, Any]:
    """A paged answer (§1.9): the true ``total``, the slice of the page, echoed numbers.
    Only the items of the page are rendered."""
    num = req.int_arg("pageNum", 1)
    size = req.int_arg("pageSize", 10)
    start = (num - 1) * size
    chunk = items[start:start + size] if start >= 0 and size > 0 else []
    return {"total": len(items), "pageNum": num, "pageSize": size,
            "list": [render(i) for i in chunk]}


class Router:
    def __init__(self, routes: Sequence[tuple[str, str, Handler]]) -> None:
        self.fixed: dict[tuple[str, str], Handler] = {}
        self.patterns: list[tuple[str, tuple[str, ...], Handler]] = []
        for method, path, handler in routes:
            segments = tuple(path.strip("/").split("/"))
            if any(s.startswith("{") for s in segments):
                self.patterns.append((method, segments, handler))
            else:
                self.fixed[(method, "/".join(segments))] = handler

    def match(self, method: str, parts: tuple[str, ...]) -> tuple[Handler, list[str]]:
        handler = self.fixed.get((method, "/".join(parts)))
        if handler is not None:
            return handler, []
        for m, segments, h in self.patterns:
            if m != method or len(segments) != len(parts):
                continue
            params = []
            for seg, part in zip(segments, parts, strict=True):
                if seg.startswith("{"):
                    params.append(part)
                elif seg != part:
                    break
            else:
                return h, params
        raise SimError(404, "Not Found", f"no route for {method} /{'/'.join(parts)}")
