"""Logging setup: the only place handlers are configured.

Every module logs through ``logging.getLogger(__name__)`` with lazy ``%`` arguments. A
process calls :func:`setup` once in its main, with the ``log`` settings and its process
name; ``format = json`` gives one JSON object per line for machines.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

from ecsm_actors.config import LogSettings


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, process, logger, msg (+ exc)."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "process": self.process_name,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup(settings: LogSettings, process_name: str, stream: TextIO | None = None) -> None:
    """Configure the root logger for this process (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter(process_name))
    else:
        fmt = logging.Formatter(
            f"%(asctime)s.%(msecs)03d %(levelname)-7s {process_name} %(name)s: %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S",
        )
        fmt.converter = time.gmtime
        handler.setFormatter(fmt)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
