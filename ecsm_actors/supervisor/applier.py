"""``--apply DIR``: once the registry is ready, apply every manifest of a directory.

Runs in the supervisor process, in a one-shot thread started when the registry first
becomes ready (so the event loop never blocks on it). Manifests are read with
:mod:`ecsm_actors.cli.manifests` (the same loader as ``ecsm-cli apply -f``) and applied
through ``RegistryClient.apply``, as ``kubectl apply`` would. The directory is read at
start (an unreadable manifest stops the supervisor from starting, with the file and line);
an object the registry refuses is logged with its reason, the others are still applied
and the supervisor keeps running.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ecsm_actors.config import Config
from ecsm_actors.errors import EcsmActorsError, ManifestError

logger = logging.getLogger(__name__)


def load_directory(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(label, object)`` of every manifest in ``directory`` (files sorted by name)."""
    from ecsm_actors.cli import manifests  # the loader of ``ecsm-cli apply -f``

    if not directory.is_dir():
        raise ManifestError(f"--apply {directory}: not a directory")
    return [(m.label, m.object) for m in manifests.load([str(directory)])]


def apply_objects(cfg: Config, objects: list[tuple[str, dict[str, Any]]]) -> int:
    """Apply ``(label, object)`` pairs; returns how many failed (each logged)."""
    from ecsm_actors.registry.client import RegistryClient

    failed = 0
    client = RegistryClient.from_config(cfg)
    try:
        for label, obj in objects:
            try:
                result = client.apply(obj)
            except EcsmActorsError as e:
                failed += 1
                logger.error("apply %s: %s", label, e)
                continue
            logger.info("apply %s: %s", label, result.action)
    finally:
        client.close()
    logger.info("--apply: %d object(s) applied, %d failed", len(objects) - failed, failed)
    return failed
