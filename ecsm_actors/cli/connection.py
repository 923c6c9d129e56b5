"""How ``ecsm-cli`` reaches the registry: which endpoints, which keys, through the link
agent or not.

Runs in the ecsm-cli process; every verb on desired state gets its clients here
(:func:`registry_client`, :func:`subscriber`), closed when the command ends.

Each value is the first of, per field:

1. flags: ``--registry``, ``--request-timeout``;
2. environment: ``ECSM_ACTORS_REGISTRY`` (endpoint), ``ECSM_ACTORS_REGISTRY_EVENTS``
   (events endpoint), ``ECSM_ACTORS_SERVER_KEY`` (the registry's public key),
   ``ECSM_ACTORS_CLIENT_KEY`` (the client's secret key file);
3. the context: ``--context NAME``, else the ``current-context`` of ``~/.ecsm-cli.yaml``
   (:mod:`.contexts`) — except that the current context is not used when the command
   names an instance itself (``--registry``, ``--run-dir``, ``ECSM_ACTORS_REGISTRY``,
   ``ECSM_ACTORS_RUN_DIR``, or a conf file setting ``registry.endpoint`` or ``run.dir``);
4. the configuration: the conf file's endpoints, else the local run dir's sockets.

A ``tcp://`` endpoint is reached with CURVE (server key + client key); without both it is
refused with one line — plain TCP only to a loopback address. A CURVE endpoint is reached
through the context's link agent (:mod:`ecsm_actors.link`), started on first use, unless
``--no-link``; when the agent cannot be started the command says so once on stderr and
talks to the registry directly, only slower.

Each request is retried by the client within its deadline: ``--request-timeout``, else
``ECSM_ACTORS_REGISTRY_REQUEST_DEADLINE``, the context's ``request-timeout``, the config's
``registry.request_deadline``. On a terminal, a wait shows one updating line on stderr
(``waiting for registry: attempt 3, 12 s``), cleared once the answer is in.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from ecsm_actors.cli import contexts
from ecsm_actors.cli.contexts import Context
from ecsm_actors.config import Config
from ecsm_actors.curve import ClientKeys, check_public_key
from ecsm_actors.errors import ConfigError, Unavailable
from ecsm_actors.link import control
from ecsm_actors.link.settings import AgentFiles, AgentSettings, agent_files
from ecsm_actors.registry.client import RegistryClient, Subscriber

if TYPE_CHECKING:
    from ecsm_actors.cli.root_options import CliContext

ENV_REGISTRY = "ECSM_ACTORS_REGISTRY"
ENV_EVENTS = "ECSM_ACTORS_REGISTRY_EVENTS"
ENV_SERVER_KEY = "ECSM_ACTORS_SERVER_KEY"
ENV_CLIENT_KEY = "ECSM_ACTORS_CLIENT_KEY"
ENV_DEADLINE = "ECSM_ACTORS_REGISTRY_REQUEST_DEADLINE"
_META = "ecsm_connection_target"


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where one command's registry requests and events go."""

    endpoint: str
    events: str
    server_key: str = ""
    client_key: str = ""
    #: The context in effect, if any; ``from_context``: the endpoint is the context's.
    context: str | None = None
    from_context: bool = False
    deadline: float

    @property
    def secured(self) -> bool:
        return bool(self.server_key and self.client_key)

    @property
    def link_name(self) -> str:
        """The link agent's name: the context's, else one derived from the connections."""
        if self.context and self.from_context:
            return self.context
        digest = hashlib.sha256("\0".join((self.endpoint, self.events, self.server_key,
                                           self.client_key)).encode()).hexdigest()
        return f"env-{digest[:12]}"

    def keys(self) -> ClientKeys | None:
        return ClientKeys.load(self.server_key, self.client_key) if self.secured else None


def select_context(cfg: Config, context_name: str | None, home: Path) -> Context | None:
    """The context in effect (see module docstring), checked."""
    path = contexts.config_path(home)
    if context_name:
        return contexts.load(path).get(context_name)
    if cfg.registry.endpoint or cfg.run.dir:
        return None  # the command names an instance itself
    return contexts.load(path).current_context()


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().absolute()) if path else ""


def resolve(cfg: Config, *, flag_registry: str | None, context_name: str | None,
            request_timeout: float | None, environ: Mapping[str, str],
            home: Path) -> Target:
    """The target of a command (see module docstring); ConfigError in one line."""
    context = select_context(cfg, context_name, home)
    explicit = flag_registry or environ.get(ENV_REGISTRY) or environ.get(
        ENV_REGISTRY + "_ENDPOINT")
    from_context = bool(not explicit and context and context.registry)
    if from_context and context:
        endpoint = context.registry
    elif not explicit and (cfg.registry.stream_endpoint or not cfg.registry.endpoint):
        endpoint = cfg.registry_local_endpoint  # the instance's stream, when it serves one
    else:
        endpoint = cfg.registry_endpoint
    events = environ.get(ENV_EVENTS) or environ.get(ENV_EVENTS + "_ENDPOINT") or (
        context.events if context and context.events else "") or cfg.registry.events_endpoint
    if not events and not endpoint.startswith("tcp://"):
        events = cfg.events_local_endpoint  # the instance's event stream, when served
    server_key = environ.get(ENV_SERVER_KEY) or (context.server_key if context else "")
    client_key = environ.get(ENV_CLIENT_KEY) or (context.client_key if context else "")
    if request_timeout is not None:
        deadline = request_timeout
    elif environ.get(ENV_DEADLINE) or not (context and context.request_timeout):
        deadline = cfg.registry.request_deadline
    else:
        deadline = context.request_timeout
    name = context.name if context else None
    contexts.check_endpoint(endpoint, "registry endpoint")
    if events:
        contexts.check_endpoint(events, "events endpoint")
    remote = [ep for ep in (endpoint, events) if ep.startswith("tcp://")]
    if remote and not (server_key and client_key):
        where = f"context {name}" if name else "the environment"
        if server_key or client_key:
            missing = "client key" if server_key else "server key"
            raise ConfigError(f"{where} has a {'server' if server_key else 'client'} key "
                              f"but no {missing}: CURVE needs both")
        if not all(contexts.is_loopback(ep) for ep in remote):
            raise ConfigError(
                f"{remote[0]} is a remote endpoint: a server key and a client key are "
                f"needed (ecsm-cli config set-context NAME --server-key KEY --client-key "
                f"FILE, or ECSM_ACTORS_SERVER_KEY and ECSM_ACTORS_CLIENT_KEY)")
    if not remote:
        server_key = client_key = ""  # CURVE is for tcp:// only
    if server_key:
        check_public_key(server_key, f"the server key of {where_of(name)}")
    return Target(endpoint=endpoint, events=events, server_key=server_key,
                  client_key=_absolute(client_key), context=name, from_context=from_context,
                  deadline=deadline)


def where_of(context: str | None) -> str:
    return f"context {context}" if context else "the environment"


# -- per command ---------------------------------------------------------------------------


class WaitLine:
    """One updating line on a terminal while a request waits; nothing elsewhere."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.shown = False

    def show(self, attempt: int, elapsed: float) -> None:
        if not self.stream.isatty():
            return
        self.stream.write(f"\r\x1b[Kwaiting for registry: attempt {attempt}, "
                          f"{elapsed:.0f} s")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


class _Client(RegistryClient):
    """A RegistryClient that clears the wait line when an answer (or an error) is in."""

    wait_line: WaitLine

    def request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = super().request(*args, **kwargs)
        finally:
            self.wait_line.clear()
        if self.last_stale and not getattr(self, "warned_stale", False):
            self.warned_stale = True
            click.echo("warning: the registry's store has lost its quorum: this answer "
                       "may be stale", err=True)
        return result


@dataclass
class _Resolved:
    """One command's target, keys and link agent (decided once per command)."""

    target: Target
    keys: ClientKeys | None
    agent: AgentFiles | None
    settings: AgentSettings | None
    started_at: float = 0.0

    def revive(self) -> None:
        """Before a retry: start the agent again if it is gone (killed, or it went idle
        just as this command came), but not while one this command started is starting."""
        if self.agent is None or self.settings is None:
            return
        if time.monotonic() - self.started_at < 3.0 or control.running(self.agent):
            return
        try:
            control.start(self.settings, self.agent)
            self.started_at = time.monotonic()
        except (OSError, ConfigError):
            pass


def command_target(ctx: CliContext) -> Target:
    """The target of the running command, from its options and environment."""
    return resolve(ctx.config, flag_registry=ctx.overrides.get("registry.endpoint"),
                   context_name=ctx.context, request_timeout=ctx.request_timeout,
                   environ=os.environ, home=Path.home())


def agent_plan(cfg: Config, target: Target) -> tuple[AgentSettings, AgentFiles]:
    """The link agent that serves ``target`` (a CURVE target) and its files."""
    settings = AgentSettings(
        name=target.link_name, endpoint=target.endpoint, events=target.events,
        server_key=target.server_key, client_key=target.client_key,
        idle_timeout=cfg.link.idle_timeout, heartbeat_interval=cfg.link.heartbeat_interval,
        heartbeat_timeout=cfg.link.heartbeat_timeout)
    return settings, agent_files(settings.name, os.environ, Path.home())


def _resolved(ctx: CliContext) -> _Resolved:
    root = click.get_current_context().find_root()
    cached = root.meta.get(_META)
    if cached is not None:
        return cached
    target = command_target(ctx)
    keys = target.keys()
    resolved = _Resolved(target=target, keys=keys, agent=None, settings=None)
    if keys is not None and not ctx.no_link:
        settings, files = agent_plan(ctx.config, target)
        try:
            if control.ensure(settings, files):
                resolved.started_at = time.monotonic()
            resolved.agent, resolved.settings = files, settings
        except (OSError, ConfigError) as e:
            click.echo(f"warning: the link agent could not start ({e}); talking to "
                       f"{target.endpoint} directly, which is slower", err=True)
    root.meta[_META] = resolved
    return resolved


def registry_client(ctx: CliContext) -> RegistryClient:
    """A client of the command's registry (through the link agent when it is remote),
    closed when the command ends. A missing local ipc socket fails at once instead of
    after the deadline."""
    r = _resolved(ctx)
    cfg = ctx.config
    line = WaitLine()

    def on_wait(attempt: int, elapsed: float) -> None:
        r.revive()
        line.show(attempt, elapsed)

    if r.agent is not None:
        client = _Client(AgentFiles.ipc(r.agent.registry_sock),
                         timeout=cfg.registry.request_timeout, deadline=r.target.deadline,
                         on_wait=on_wait)
    else:
        endpoint = r.target.endpoint
        scheme = endpoint.partition("://")[0]
        if scheme in ("ipc", "unix") and not Path(endpoint[len(scheme) + 3:]).exists():
            raise Unavailable(f"no registry is running at {endpoint} (start it with "
                              f"ecsm-operator, or pass --registry/--run-dir/--context)")
        client = _Client(endpoint, timeout=cfg.registry.request_timeout,
                         deadline=r.target.deadline, curve=r.keys, on_wait=on_wait,
                         heartbeat_interval=cfg.link.heartbeat_interval,
                         heartbeat_timeout=cfg.link.heartbeat_timeout)
    client.wait_line = line
    ctx_click = click.get_current_context()
    ctx_click.call_on_close(client.close)
    ctx_click.call_on_close(line.clear)
    return client


def subscriber(ctx: CliContext, kinds: Iterable[str]) -> Subscriber:
    """A subscriber to the command's registry events of ``kinds`` (all when empty),
    through the link agent when it is remote; closed when the command ends."""
    r = _resolved(ctx)
    cfg = ctx.config
    if not r.target.events:
        where = where_of(r.target.context)
        raise ConfigError(f"{where} has no events endpoint for {r.target.endpoint} "
                          f"(ecsm-cli config set-context NAME --events tcp://HOST:PORT, or "
                          f"ECSM_ACTORS_REGISTRY_EVENTS)")
    if r.agent is not None:
        sub = Subscriber(AgentFiles.ipc(r.agent.events_sock), kinds=kinds,
                         rcvhwm=cfg.registry.pub_hwm)
    else:
        sub = Subscriber(r.target.events, kinds=kinds, rcvhwm=cfg.registry.pub_hwm,
                         curve=r.keys, heartbeat_interval=cfg.link.heartbeat_interval,
                         heartbeat_timeout=cfg.link.heartbeat_timeout,
                         max_frame=int(cfg.registry.max_frame_bytes))
    click.get_current_context().call_on_close(sub.close)
    return sub


def ecsm_values(ctx: Any, home: Path) -> dict[str, Any]:
    """The ECSM address of the context in effect as ``{protocol, host, port}`` (empty when
    none), for the platform verbs. A file that cannot be read counts as no context unless
    one was named: the platform verbs warn about it and go on, as they always did."""
    if ctx is None or not hasattr(ctx, "config"):
        return {}
    named = getattr(ctx, "context", None)
    if not named and (ctx.config.registry.endpoint or ctx.config.run.dir):
        return {}  # a local instance: no context (as for the registry)
    try:
        cf = contexts.load(contexts.config_path(home))
    except ConfigError:
        if named:
            raise
        return {}
    context = cf.get(named) if named else cf.current_context()
    if context is None or not context.ecsm:
        return {}
    return contexts.parse_ecsm_url(context.ecsm, f"context {context.name}: ecsm")
