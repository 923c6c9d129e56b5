"""The HPA's events: a rescale says its new size and why; a target it cannot scale is a
Warning with the condition's reason."""

from __future__ import annotations

from tests.unit.test_hpa_controller import Harness, hpa, service
from tests.unit.test_service_event_reasons import Recorder


def test_a_rescale_is_an_event_with_its_size_and_reason() -> None:
    h = Harness()
    rec = Recorder()
    h.ctx.recorder = rec  # type: ignore[attr-defined]
    h.registry.put(service(replicas=2))
    h.registry.put(hpa())
    h.containers.set("svc-1", [100, 100])
    h.sync()
    [(type_, name, reason, message)] = rec.seen
    assert (type_, name, reason) == ("Normal", "web", "SuccessfulRescale")
    assert message.startswith("New size: 4 (was 2); reason: ") and "above target" in message


def test_a_static_target_is_a_warning_with_the_conditions_reason() -> None:
    h = Harness()
    rec = Recorder()
    h.ctx.recorder = rec  # type: ignore[attr-defined]
    h.registry.put(service(strategy="Static"))
    h.registry.put(hpa())
    h.sync()
    assert [(t, r) for t, _, r, _ in rec.seen] == [("Warning", "StaticStrategy")]
