"""``--apply DIR``: once the registry is ready, apply every manifest of a directory.

Runs in the supervisor process, in a one-shot thread started when the registry first
becomes ready (so the event loop never blocks on it). Manifests are read with
:mod:`ecsm_actors.cli.manifests` (the same loader as ``ecsm-cli apply -f``) and applied
through ``RegistryClient.apply``, as ``kubectl apply`` would. A bad manifest or a refused
object is logged with its file and reason; the others are still applied, the supervisor
keeps running.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ecsm_actors.config import Config
from ecsm_actors.errors import EcsmActorsError, ManifestError

logger = logging.getLogger(__name__)

_SUFFIXES = (".yaml", ".yml", ".json")


def load_directory(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every object of every manifest file in ``directory`` (sorted by file name)."""
    if not directory.is_dir():
        raise ManifestError(f"{directory}: not a directory")
    try:
        from ecsm_actors.cli import manifests  # the registry engineer's loader
    except ModuleNotFoundError as e:
        if e.name != "ecsm_actors.cli.manifests":
            raise
        return _load_yaml(directory)
    return [(str(source), obj) for source, obj in _from_loader(manifests, directory)]


def _from_loader(manifests: Any, directory: Path) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(p for p in directory.iterdir() if p.suffix in _SUFFIXES):
        for obj in manifests.load_manifests([str(path)]):
            out.append((str(path), dict(getattr(obj, "object", obj))))
    return out


def _load_yaml(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    import yaml

    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(p for p in directory.iterdir() if p.suffix in _SUFFIXES):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except (OSError, yaml.YAMLError) as e:
            raise ManifestError(f"{path}: {e}") from e
        for doc in docs:
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise ManifestError(f"{path}: expected an object, got {type(doc).__name__}")
            out.append((str(path), doc))
    return out


def apply_directory(cfg: Config, directory: Path) -> int:
    """Apply the manifests; returns how many objects failed (logged one by one)."""
    from ecsm_actors.registry.client import RegistryClient

    try:
        objects = load_directory(directory)
    except EcsmActorsError as e:
        logger.error("--apply %s: %s", directory, e)
        return 1
    failed = 0
    client = RegistryClient.from_config(cfg)
    try:
        for source, obj in objects:
            meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            what = f"{obj.get('kind', '?')}/{meta.get('name', '?')}"
            try:
                result = client.apply(obj)
            except EcsmActorsError as e:
                failed += 1
                logger.error("apply %s (%s): %s", what, source, e)
                continue
            logger.info("apply %s: %s", what, result.action)
    finally:
        client.close()
    logger.info("--apply %s: %d object(s), %d failed", directory, len(objects), failed)
    return failed
