"""Carries out a plan's actions on ECSM: create, scale (update), delete, restart.

Runs inside the service-controller process, on the reconcile worker threads, over the
shared (thread-safe) ECSM clientset. Each action is idempotent against the reality the
next pass observes: "already exists" on create is adoption, "not found" on scale, delete
or a container action means someone got there first. An ECSM 4xx (unknown image or node)
is a :class:`TerminalError` carrying ECSM's message; anything else propagates (the
Reconciler turns unavailability and 5xx into a backed-off retry).

A scale reuses the image spec ECSM stores for that revision (``GET service/{id}``), so an
update never changes a revision's image — ECSM would replace every container — and an old
revision can be scaled without knowing its template. ``spec`` comes with any
``passwordFile`` already read (:func:`.secret_file.with_password`); no log line here names
a body, and ECSM's message about a request carrying a VSOA password has it redacted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ecsm_actors.api.secrets import scrub
from ecsm_actors.controllers.service import mapping
from ecsm_actors.controllers.service.model import Action, Create, Delete, Restart, Scale
from ecsm_actors.controllers.service.naming import service_name
from ecsm_actors.errors import EcsmApiError, EcsmNotFound, TerminalError

logger = logging.getLogger(__name__)


def name_exists(e: EcsmApiError) -> bool:
    """ECSM's answer to a create whose name is taken."""
    text = f"{e.message} {e.field_errors or ''}".lower()
    return e.is_client_error and ("exist" in text or "duplicate" in text)


def rejected(what: str, e: EcsmApiError, *, password: object = None) -> TerminalError:
    """The terminal error for an ECSM 4xx; ``password`` (the VSOA password the request
    carried) is redacted should ECSM's message quote it."""
    detail = e.message + (f" ({e.field_errors})" if e.field_errors else "")
    return TerminalError(scrub(f"ECSM rejected {what}: {detail}", password),
                         reason="EcsmRejected")


def _password(image: Any) -> object:
    vsoa = image.get("vsoa") if isinstance(image, dict) else None
    return vsoa.get("password") if isinstance(vsoa, dict) else None


class Actuator:
    def __init__(self, clientset: Any) -> None:
        self._ecsm = clientset

    def apply(self, namespace: str, name: str, spec: dict[str, Any],
              actions: Sequence[Action]) -> None:
        key = f"{namespace}/{name}"
        for action in actions:
            if isinstance(action, Create):
                self.create(namespace, name, spec, action)
            elif isinstance(action, Scale):
                self.scale(key, action)
            elif isinstance(action, Delete):
                logger.info("key=%s delete revision %s (%s)", key, action.revision,
                            action.service_id)
                self.delete(action.service_id)
            elif isinstance(action, Restart):
                logger.info("key=%s container %s: %s", key, action.container_name,
                            action.action)
                try:
                    self._ecsm.containers.action_by_name(action.container_name, action.action)
                except EcsmNotFound:
                    pass  # gone meanwhile; the next pass sees what replaced it

    def create(self, namespace: str, name: str, spec: dict[str, Any], action: Create) -> None:
        key = f"{namespace}/{name}"
        template = spec.get("template") or {}
        ref = mapping.image_ref(template)
        try:
            base = self._ecsm.images.config(ref)
        except EcsmApiError as e:
            if e.is_client_error:
                raise rejected(f"image {ref}", e) from e
            raise
        ecsm_name = service_name(namespace, name, action.revision)
        body = mapping.create_body(spec, ecsm_name=ecsm_name, default_hostname=name,
                                   factor=action.factor, node_names=action.node_names,
                                   base_config=base)
        try:
            created = self._ecsm.services.create(body)
        except EcsmApiError as e:
            if name_exists(e):
                logger.info("key=%s ECSM service %s already exists: adopting it", key,
                            ecsm_name)
                return
            if e.is_client_error:
                raise rejected(f"service {ecsm_name}", e,
                               password=_password(body.get("image"))) from e
            raise
        logger.info("key=%s created ECSM service %s id=%s factor=%d nodes=%s", key, ecsm_name,
                    created.get("id"), action.factor, ",".join(action.node_names))

    def scale(self, key: str, action: Scale) -> None:
        try:
            detail = self._ecsm.services.get(action.service_id)
        except EcsmNotFound:
            return  # deleted behind our back: the next pass recreates what is missing
        image = detail.raw.get("image")
        if not isinstance(image, dict):
            raise TerminalError(f"ECSM service {detail.name} has no image spec",
                                reason="EcsmRejected")
        body = mapping.update_body(service_id=action.service_id, ecsm_name=detail.name,
                                   image=image, factor=action.factor,
                                   node_names=action.node_names, policy=action.policy)
        try:
            self._ecsm.services.update(action.service_id, body)
        except EcsmNotFound:
            return
        except EcsmApiError as e:
            if e.is_client_error:
                raise rejected(f"service {detail.name}", e, password=_password(image)) from e
            raise
        logger.info("key=%s scaled revision %s to factor=%d nodes=%s policy=%s", key,
                    action.revision, action.factor, ",".join(action.node_names), action.policy)

    def delete(self, service_id: str) -> None:
        try:
            self._ecsm.services.delete(service_id)
        except EcsmNotFound:
            pass
