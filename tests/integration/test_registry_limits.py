"""The registry validates every write against the configured upper bounds (``[api]``)."""

from __future__ import annotations

import pytest

from ecsm_actors.errors import Invalid
from tests.registry_fixtures import StartRegistry
from tests.registry_samples import service


@pytest.mark.timeout(60)
def test_a_registry_configured_for_more_replicas_accepts_them_and_refuses_beyond(
        registry: StartRegistry) -> None:
    _, client = registry({"ECSM_ACTORS_API_MAX_REPLICAS": "2000"})
    created = client.create(service("big", replicas=2000))
    assert created["spec"]["deploymentStrategy"]["replicas"] == 2000
    with pytest.raises(Invalid) as info:
        client.create(service("bigger", replicas=2001))
    assert ("spec.deploymentStrategy.replicas: must be less than or equal to 2000"
            in str(info.value))
