"""Rendering a configuration as the commented TOML of ``conf/ecsm-actors.toml``."""

from __future__ import annotations

import dataclasses
import json
from typing import get_type_hints

from ecsm_actors.config.settings import ByteSize, Config, StrList


def render_toml(cfg: Config | None = None) -> str:
    """The conf file of ``cfg`` (defaults when None), every key with its ``#:`` comment.

    ``conf/ecsm-actors.toml`` is this output; a unit test keeps the two in step.
    """
    import inspect

    cfg = cfg or Config()
    lines = ["# ecsm-actors configuration. Every key is optional; shown with its default.",
             "# Precedence: defaults < this file < ECSM_ACTORS_SECTION_KEY env < flags.",
             "# Durations are seconds; sizes accept quantities such as 512Mi or 1Gi.", ""]
    hints = get_type_hints(Config)
    for section in dataclasses.fields(Config):
        cls = hints[section.name]
        docs: dict[str, list[str]] = {}
        pending: list[str] = []
        for raw in inspect.getsource(cls).splitlines():
            text = raw.strip()
            if text.startswith("#:"):
                pending.append(text[2:].strip())
            elif ":" in text and not text.startswith(("class", "@", '"')):
                docs[text.split(":")[0].strip()] = pending
                pending = []
        lines.append(f"[{section.name}]")
        for name, typ in get_type_hints(cls).items():
            for doc in docs.get(name, []):
                lines.append(f"# {doc}")
            value = getattr(getattr(cfg, section.name), name)
            if typ is str:
                rendered = json.dumps(value)
            elif typ is ByteSize:
                rendered = json.dumps(_format_bytes(int(value)))
            elif typ is StrList:
                rendered = json.dumps(list(value))
            elif typ is bool:
                rendered = "true" if value else "false"
            else:
                rendered = repr(value)
            lines.append(f"{name} = {rendered}")
        lines.append("")
    return "\n".join(lines)


def _format_bytes(n: int) -> str:
    for suffix, factor in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n and n % factor == 0:
            return f"{n // factor}{suffix}"
    return str(n)
