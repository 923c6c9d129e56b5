"""What the informer talks to and calls: the registry reader, the event source, the
handler (all Protocols, so unit tests plug in fakes), and the key/version of an object.

Runs in controller processes. ``RegistryClient`` of :mod:`ecsm_actors.registry.client`
satisfies the reader; ``HeadSubscriber`` (events without their objects, all the informer
reads of them) and ``Subscriber`` of :mod:`ecsm_actors.registry.subscriber` the source.
"""

from __future__ import annotations

from typing import Any, Protocol

from ecsm_actors import protocol


class EventHandler(Protocol):
    """Receives the changes of one kind. Implementations only enqueue keys. One may also
    have ``on_add_all(items)``: the informer then hands it a first list's
    ``(key, resourceVersion)`` pairs in one call instead of ``on_add`` for each."""

    def on_add(self, key: str, resource_version: int) -> None: ...
    def on_update(self, key: str, resource_version: int) -> None: ...
    def on_delete(self, key: str, resource_version: int) -> None: ...
    def on_resync(self, key: str, resource_version: int) -> None: ...


class ListLike(Protocol):
    @property
    def items(self) -> list[dict[str, Any]]: ...
    @property
    def resource_version(self) -> int: ...
    @property
    def epoch(self) -> str: ...


class VersionsLike(Protocol):
    """A versions-only list: ``(namespace/name, resourceVersion)`` per object."""

    @property
    def versions(self) -> list[tuple[str, int]]: ...
    @property
    def resource_version(self) -> int: ...
    @property
    def epoch(self) -> str: ...


class WatchLike(Protocol):
    @property
    def events(self) -> list[protocol.Event]: ...
    @property
    def resource_version(self) -> int: ...
    @property
    def epoch(self) -> str: ...


class RegistryReader(Protocol):
    """The part of ``RegistryClient`` the informer uses (it lists versions only: it
    keeps no objects, so it never pays for decoding them)."""

    def list_versions(self, kind: str, namespace: str | None = None) -> VersionsLike: ...
    def watch_since(self, resource_version: int) -> WatchLike: ...
    def close(self) -> None: ...


class EventSource(Protocol):
    """The part of ``HeadSubscriber`` the informer uses."""

    def recv(self, timeout: float | None) -> protocol.EventHead | protocol.Heartbeat | None:
        ...
    def close(self) -> None: ...


def object_key_of(obj: dict[str, Any]) -> str:
    """``namespace/name`` of an object (the workqueue key)."""
    meta = obj.get("metadata") or {}
    return protocol.object_key(str(meta.get("namespace", "default")), str(meta.get("name", "")))


def resource_version_of(obj: dict[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("resourceVersion", 0))
