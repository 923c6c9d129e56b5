"""Copying every object between the LMDB store and an etcd prefix (``ecsm-operator store
migrate``), for a device that outgrows its single computer, or goes back to one.

Runs in the operator's shell, never beside the run dir's operator: the supervisor of the
run dir must be stopped, the LMDB store must not be open in a registry (its lock says),
and no controller may hold a leader lease under the etcd prefix. Each object is copied
whole — uid, creationTimestamp, generation, labels, annotations, finalizers,
deletionTimestamp, spec and status — and only ``metadata.resourceVersion`` changes (each
backend counts its own). Not copied: the request window (its outcomes name versions of
the source) and the Event records (``ecsm-cli get events``; they expire anyway).

The source is only read, so it is intact whatever happens. The target changes as one step:

* LMDB: the objects are restored (:meth:`Store.restore`, one transaction) into a fresh
  store in ``<data dir>.migrating``, which then replaces the data dir by a rename; a data
  dir that was there is kept aside as ``<data dir>.replaced-<UTC time>``. Interrupted
  before the rename, the data dir is untouched and the next run clears the leftover.
* etcd: a marker ``<prefix>migrating`` is written first, then the objects in
  transactions of at most :data:`TXN_OPS` puts (etcd bounds a transaction), then, in one
  last transaction guarded by the marker, a new ``<prefix>epoch`` (registries and
  informers relist) and the marker removed. A prefix that still holds the marker is an
  interrupted migration: it is refused as a source, and as a target without
  ``--overwrite``.

The keys and values in etcd are the etcd store's (:mod:`ecsm_actors.store.etcd_layout`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecsm_actors.api import KINDS
from ecsm_actors.config import Config
from ecsm_actors.errors import EcsmActorsError, Internal, MigrationError, RegistryError
from ecsm_actors.files import fsync_dir
from ecsm_actors.store import etcd_layout as layout
from ecsm_actors.store.lmdb_store import Store

if TYPE_CHECKING:
    from ecsm_actors.etcd.client import EtcdClient

BACKENDS = ("lmdb", "etcd")
#: Puts per etcd transaction (etcd refuses more than ``--max-txn-ops``, 128 by default).
TXN_OPS = 64
#: Bytes of values per etcd transaction (etcd refuses requests over 1.5 MiB by default).
TXN_BYTES = 1 << 20
#: Objects read per etcd range request.
PAGE = 500

Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class Report:
    """What a migration did: objects per kind, where they went, what was kept aside."""

    source: str
    target: str
    kinds: Counter[str] = field(default_factory=Counter)
    resource_version: int = 0
    replaced: int = 0
    kept_aside: Path | None = None

    @property
    def count(self) -> int:
        return sum(self.kinds.values())

    def lines(self) -> list[str]:
        per_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(self.kinds.items()))
        out = [f"copied {self.count} objects ({per_kind or 'none'}) from {self.source} "
               f"to {self.target}; resourceVersion there now {self.resource_version}"]
        if self.replaced:
            out.append(f"replaced {self.replaced} objects the target held (--overwrite)")
        if self.kept_aside is not None:
            out.append(f"the previous LMDB data dir is kept in {self.kept_aside} "
                       "(delete it once the new store serves)")
        out.append("not copied: the request window and Event records")
        return out


def migrate(cfg: Config, source: str, target: str, *, overwrite: bool = False,
            progress: Progress = lambda line: None,
            etcd: EtcdClient | None = None) -> Report:
    """Copy every object of ``source`` into ``target`` (``lmdb`` / ``etcd``, as configured
    in ``cfg``). The caller makes sure that the run dir's supervisor is stopped.
    Raises MigrationError (one line) when refused or interrupted."""
    if {source, target} != set(BACKENDS):
        raise MigrationError(f"migrate copies between lmdb and etcd, not from {source} "
                             f"to {target}")
    client = etcd or _client(cfg)
    try:
        remote = EtcdPrefix(client, cfg)
        remote.check_reachable()
        remote.refuse_if_leased()
        command = (f"ecsm-operator store migrate --from {source} --to {target} "
                   "--overwrite")
        if source == "lmdb":
            held = remote.check_target(overwrite)
            objects = read_lmdb(cfg)
            progress(f"read {len(objects)} objects from {_lmdb_name(cfg)}")
            return remote.write(objects, held=held, overwrite=overwrite, command=command,
                                source=_lmdb_name(cfg), progress=progress)
        held = check_lmdb_target(cfg, overwrite)
        objects = remote.read()
        progress(f"read {len(objects)} objects from {remote.name}")
        return write_lmdb(cfg, objects, held=held, source=remote.name)
    finally:
        if etcd is None:
            client.close()


def _client(cfg: Config) -> EtcdClient:
    if not cfg.store.etcd_endpoints:
        raise MigrationError("no etcd endpoint configured: give --etcd-endpoints URL,URL "
                             "(or store.etcd_endpoints)")
    from ecsm_actors.etcd.client import EtcdClient

    return EtcdClient.from_config(cfg)


def _lmdb_name(cfg: Config) -> str:
    return f"lmdb ({cfg.data_dir})"


def _kinds(objects: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(o.get("kind")) for o in objects)


# -- LMDB -------------------------------------------------------------------------------


def _open_lmdb(cfg: Config, path: Path) -> Store:
    r = cfg.registry
    try:
        return Store(path, map_size=r.map_size, full_ratio=r.full_ratio,
                     event_log_limit=r.event_log_limit, request_window=r.request_window,
                     request_window_age=r.request_window_age)
    except Internal as e:
        if "in use" not in str(e):  # e.g. a data.mdb without its write-ahead log
            raise MigrationError(str(e)) from e
        raise MigrationError(f"{e}: stop the registry that uses it first") from e


def read_lmdb(cfg: Config) -> list[dict[str, Any]]:
    """Every object of the run dir's LMDB store (which must exist)."""
    if not (cfg.data_dir / "data.mdb").is_file():
        raise MigrationError(f"no LMDB store in {cfg.data_dir} (nothing to migrate)")
    store = _open_lmdb(cfg, cfg.data_dir)
    try:
        return [obj for kind in KINDS for obj in store.list_objects(kind)[0]]
    finally:
        store.close()


def check_lmdb_target(cfg: Config, overwrite: bool) -> int:
    """The objects the run dir's LMDB store holds (0 when there is none); refused unless
    ``overwrite`` when there are some."""
    if not (cfg.data_dir / "data.mdb").is_file():
        return 0
    store = _open_lmdb(cfg, cfg.data_dir)
    try:
        held = sum(len(store.list_versions(kind)[0]) for kind in KINDS)
    finally:
        store.close()
    if held and not overwrite:
        raise MigrationError(f"the LMDB store in {cfg.data_dir} already holds {held} "
                             "objects: give --overwrite to replace it (it is kept aside)")
    return held


def write_lmdb(cfg: Config, objects: list[dict[str, Any]], *, held: int,
               source: str) -> Report:
    """Restore ``objects`` into a fresh store, then put it in place of the data dir."""
    data = cfg.data_dir
    staging = data.with_name(data.name + ".migrating")
    shutil.rmtree(staging, ignore_errors=True)  # what an interrupted run left
    try:
        store = _open_lmdb(cfg, staging)
        try:
            rv = store.restore(objects)
        finally:
            store.close()
    except (EcsmActorsError, KeyboardInterrupt, OSError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise MigrationError(f"interrupted ({_cause(e)}): nothing was written to {data}; "
                             "the source is intact: run the same command again") from e
    kept: Path | None = None
    if data.exists():
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        kept = data.with_name(f"{data.name}.replaced-{stamp}")
        data.rename(kept)
    staging.rename(data)
    fsync_dir(data.parent)
    return Report(source=source, target=_lmdb_name(cfg), kinds=_kinds(objects),
                  resource_version=rv, replaced=held, kept_aside=kept)


def _cause(e: BaseException) -> str:
    return "interrupted by the user" if isinstance(e, KeyboardInterrupt) else str(e)


# -- etcd ---------------------------------------------------------------------------------


class EtcdPrefix:
    """This operator's prefix in etcd, as the migration reads and writes it."""

    def __init__(self, client: EtcdClient, cfg: Config) -> None:
        self.client = client
        self.prefix = layout.prefix_bytes(cfg.store.etcd_prefix)
        self.endpoints = ",".join(cfg.store.etcd_endpoints)
        self.name = f"etcd ({self.endpoints}, prefix {cfg.store.etcd_prefix})"
        self.objects = layout.objects_prefix(self.prefix)
        self.requests = self.prefix + layout.REQUESTS
        self.marker = self.prefix + b"migrating"
        self.epoch = layout.epoch_key(self.prefix)

    def _end(self, key: bytes) -> bytes:
        from ecsm_actors.etcd.client import prefix_end

        return prefix_end(key)

    def check_reachable(self) -> None:
        try:
            self.client.status()
        except RegistryError as e:
            raise MigrationError(f"etcd is unreachable ({e}); nothing was copied") from e

    def refuse_if_leased(self) -> None:
        """No controller may lead on this prefix: an operator runs on it somewhere."""
        leases = self.prefix + layout.LEASES
        held = self.client.range(leases, self._end(leases)).kvs
        if held:
            who = ", ".join(f"{kv.key[len(leases):].decode(errors='replace')} by "
                            f"{kv.value.decode(errors='replace')}" for kv in held)
            raise MigrationError(f"an operator runs on {self.name} (leaders: {who}): "
                                 "stop every host's operator first")

    def _count(self, key: bytes) -> int:
        return self.client.range(key, self._end(key), count_only=True).count

    def _interrupted(self) -> dict[str, Any] | None:
        kvs = self.client.range(self.marker).kvs
        if not kvs:
            return None
        try:
            doc = json.loads(kvs[0].value)
        except ValueError:
            doc = None
        return doc if isinstance(doc, dict) else {}

    def read(self) -> list[dict[str, Any]]:
        """Every object under the prefix, read at one revision (a consistent copy)."""
        if self._interrupted() is not None:
            raise MigrationError(f"{self.name} holds an interrupted migration, not a store: "
                                 "migrate into it again with --overwrite first")
        objects: list[dict[str, Any]] = []
        key, end, revision = self.objects, self._end(self.objects), 0
        while True:
            page = self.client.range(key, end, revision=revision, limit=PAGE)
            revision = revision or page.revision
            for kv in page.kvs:
                try:
                    objects.append(layout.decode_object(kv.value, kv.mod_revision))
                except (ValueError, TypeError, KeyError) as e:
                    raise MigrationError(f"{kv.key.decode(errors='replace')} in etcd is "
                                         f"not an object ({e}); nothing was copied") from e
            if not page.more or not page.kvs:
                return objects
            key = page.kvs[-1].key + b"\0"

    def check_target(self, overwrite: bool) -> int:
        """The objects under the prefix; refused unless ``overwrite`` when there are
        some, or an interrupted migration."""
        held = self._count(self.objects)
        interrupted = self._interrupted() is not None
        if (held or interrupted) and not overwrite:
            what = "an interrupted migration" if interrupted else f"{held} objects"
            raise MigrationError(f"{self.name} already holds {what}: give --overwrite "
                                 "to replace it")
        return held

    def write(self, objects: list[dict[str, Any]], *, held: int, overwrite: bool,
              command: str, source: str, progress: Progress) -> Report:
        """Marker, objects in bounded transactions, then the new epoch with the marker
        removed in one transaction guarded by it."""
        from ecsm_actors.etcd.client import Compare, TxnOp

        token = os.urandom(8).hex()
        marker = json.dumps({"from": source, "token": token, "objects": len(objects),
                             "started": time.time()}).encode()
        done = 0
        try:
            self.client.put(self.marker, marker)
            if overwrite:
                self.client.delete(self.objects, self._end(self.objects))
                self.client.delete(self.requests, self._end(self.requests))
            for batch in _batches(self.prefix, objects):
                self.client.txn([], [TxnOp.put(k, v) for k, v in batch])
                if (done + len(batch)) // 1000 > done // 1000:
                    progress(f"{done + len(batch)} of {len(objects)} objects written")
                done += len(batch)
            cluster_id = self.client.range(self.marker).cluster_id
            result = self.client.txn(
                [Compare.value(self.marker, "=", marker)],
                [TxnOp.put(self.epoch, layout.pack_epoch(os.urandom(8).hex(), cluster_id)),
                 TxnOp.delete(self.marker)])
        except (EcsmActorsError, KeyboardInterrupt) as e:
            raise MigrationError(
                f"interrupted after {done} of {len(objects)} objects ({_cause(e)}); the "
                f"source is intact, {self.name} is incomplete and marked so: run "
                f"{command} to start over") from e
        if not result.succeeded:
            raise MigrationError(f"another migration took over {self.name} meanwhile; "
                                 "the source is intact: run "
                                 f"{command} once it is done")
        return Report(source=source, target=self.name, kinds=_kinds(objects),
                      resource_version=result.revision, replaced=held)


def _batches(prefix: bytes,
             objects: list[dict[str, Any]]) -> Iterator[list[tuple[bytes, bytes]]]:
    batch: list[tuple[bytes, bytes]] = []
    size = 0
    for obj in objects:
        meta = obj["metadata"]
        key = layout.object_key(prefix, f"{obj['kind']}/{meta['namespace']}/{meta['name']}"
                                .encode())
        value = layout.pack_object(obj)
        if batch and (len(batch) >= TXN_OPS or size + len(value) > TXN_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((key, value))
        size += len(value)
    if batch:
        yield batch
