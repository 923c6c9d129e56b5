"""Start a real registry process for a test and wait until it answers PING."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import Any

from ecsm_actors.config import Config, load_config
from ecsm_actors.registry.client import RegistryClient
from tests.helpers import Processes, wait_until


def registry_config(processes: Processes, env: dict[str, str] | None = None) -> Config:
    """The config the registry sees for this run dir (and ``env`` overrides)."""
    return load_config(None, environ=processes.env(env))


def start_registry(processes: Processes, env: dict[str, str] | None = None,
                   timeout: float = 15.0) -> tuple[subprocess.Popen[Any], RegistryClient]:
    """Spawn ``python -m ecsm_actors registry`` in the run dir; return it and a client
    once it answers PING (the client uses a short timeout so a test never hangs)."""
    proc = processes.spawn("registry", env=env, log_name="registry")
    cfg = registry_config(processes, env)
    client = RegistryClient(cfg.registry_endpoint, timeout=1.0)

    def ready() -> bool:
        assert proc.poll() is None, f"registry exited with {proc.returncode}"
        try:
            client.ping()
        except Exception:  # noqa: BLE001 - not up yet
            return False
        return True

    wait_until(ready, timeout=timeout, what="the registry to answer PING")
    return proc, client


StartRegistry = Callable[..., tuple[subprocess.Popen[Any], RegistryClient]]


def registry_starter(processes: Processes) -> Iterator[StartRegistry]:
    """Body of a ``registry`` fixture: ``registry(env=None)`` starts a registry (see
    :func:`start_registry`); its clients are closed at teardown, the process is killed by
    the ``processes`` fixture. Use as::

        @pytest.fixture
        def registry(processes):
            yield from registry_starter(processes)
    """
    clients: list[RegistryClient] = []

    def start(env: dict[str, str] | None = None) -> tuple[subprocess.Popen[Any], RegistryClient]:
        proc, client = start_registry(processes, env)
        clients.append(client)
        return proc, client

    yield start
    for client in clients:
        client.close()
