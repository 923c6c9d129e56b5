"""Status conditions the runtime itself writes: why a key failed (terminal error, or
``controller.failure_threshold`` consecutive failures), and that it recovered.

Runs in controller worker threads, inside the worker loop's error handling, so writing a
condition never raises: a failure to write is logged and the key's retry goes on.
Conditions follow Kubernetes ``SetStatusCondition``: one per type, ``lastTransitionTime``
moves only when ``status`` changes.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from ecsm_actors import protocol
from ecsm_actors.errors import Conflict, NotFound, RegistryError
from ecsm_actors.runtime.types import ReconcileContext

logger = logging.getLogger(__name__)

DEGRADED = "Degraded"
#: Reason of the condition written after too many consecutive failures.
REASON_FAILING = "ReconcileFailing"
REASON_RECOVERED = "ReconcileSucceeded"


def now_rfc3339() -> str:
    return datetime.fromtimestamp(int(time.time()), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(conditions: list[dict[str, Any]], *, type_: str, status: str, reason: str,
                  message: str) -> tuple[list[dict[str, Any]], bool]:
    """Return ``conditions`` with the condition of ``type_`` set, and whether it changed."""
    out, changed, found = [], False, False
    for c in conditions:
        if c.get("type") != type_:
            out.append(c)
            continue
        found = True
        new = {"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": c.get("lastTransitionTime") if c.get("status") == status
               and c.get("lastTransitionTime") else now_rfc3339()}
        changed = any(c.get(k) != new[k] for k in ("status", "reason", "message"))
        out.append(new)
    if not found:
        changed = True
        out.append({"type": type_, "status": status, "reason": reason, "message": message,
                    "lastTransitionTime": now_rfc3339()})
    return out, changed


def find_condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def write_condition(ctx: ReconcileContext, key: str, *, status: str, reason: str, message: str,
                    only_if_reason: str | None = None, type_: str = DEGRADED) -> bool:
    """Set a condition on the object ``key`` (retrying conflicts a few times). With
    ``only_if_reason``, touch it only while its current reason is that one (so the runtime
    never overwrites a condition the reconciler set). Return whether it is now written."""
    namespace, name = protocol.split_key(key)
    for _ in range(3):
        try:
            obj = ctx.registry.get(ctx.kind, namespace, name)
            if only_if_reason is not None:
                current = find_condition(obj, type_)
                if current is None or current.get("reason") != only_if_reason:
                    return False
            status_block = dict(obj.get("status") or {})
            conditions, changed = set_condition(list(status_block.get("conditions") or []),
                                                type_=type_, status=status, reason=reason,
                                                message=message[:1000])
            if not changed:
                return True
            status_block["conditions"] = conditions
            obj["status"] = status_block
            ctx.update_status(obj)
            return True
        except Conflict:
            continue
        except NotFound:
            return False
        except RegistryError as e:
            logger.warning("key=%s cannot write condition %s=%s (%s): %s", key, type_, status,
                           reason, e)
            return False
    logger.warning("key=%s cannot write condition %s=%s (%s): conflicts", key, type_, status,
                   reason)
    return False
