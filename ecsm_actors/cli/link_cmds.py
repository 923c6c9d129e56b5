"""``ecsm-cli config …`` (contexts), ``ecsm-cli keys generate`` and ``ecsm-cli link …``.

Runs in the ecsm-cli process; three groups, attached to the root group by
:mod:`ecsm_actors.cli.ecsm_cli`:

* ``config get-contexts | current-context | use-context NAME | set-context NAME
  [--registry EP] [--events EP] [--server-key KEY] [--client-key FILE] [--ecsm URL]
  [--request-timeout S]`` — the contexts of ``~/.ecsm-cli.yaml`` (:mod:`.contexts`);
* ``keys generate [--out PATH]`` — a client CURVE key pair: prints the public key on
  stdout (for a script) and the next steps on stderr;
* ``link up | status | down`` — the link agents (:mod:`ecsm_actors.link`): ``up`` starts
  the agent of the context in effect and waits until it is connected, ``status`` shows
  every agent and remote context, ``down`` stops agents and leaves no process.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from ecsm_actors import curve
from ecsm_actors.cli import connection, contexts
from ecsm_actors.cli.printers import escape, format_duration, print_table
from ecsm_actors.cli.root_options import CliContext, pass_cli
from ecsm_actors.errors import ConfigError, Unavailable
from ecsm_actors.link import control
from ecsm_actors.link.settings import AgentFiles, agent_files, link_root


def _path() -> Path:
    return contexts.config_path(Path.home())


# -- config ------------------------------------------------------------------------------


@click.group("config")
def config_group() -> None:
    """Contexts of ~/.ecsm-cli.yaml: where a remote registry is and with which keys."""


@config_group.command("get-contexts")
def get_contexts() -> None:
    """List the contexts (* marks the current one)."""
    cf = contexts.load(_path())
    rows: list[list[Any]] = []
    for entry in cf.entries():
        name = str(entry.get("name", ""))
        rows.append(["*" if name == cf.current else "", name, entry.get("registry"),
                     entry.get("events"), entry.get("ecsm"), entry.get("client-key")])
    if not rows:
        click.echo(f"No contexts in {cf.path}.", err=True)
        return
    print_table(("current", "name", "registry", "events", "ecsm", "client-key"), rows)


@config_group.command("current-context")
def current_context() -> None:
    """Print the current context's name."""
    cf = contexts.load(_path())
    if not cf.current:
        raise ConfigError(f"current-context is not set in {cf.path} "
                          f"(ecsm-cli config use-context NAME)")
    click.echo(escape(cf.current))


@config_group.command("use-context")
@click.argument("name")
def use_context(name: str) -> None:
    """Make NAME the current context."""
    context = contexts.use_context(_path(), name)
    click.echo(f'Switched to context "{escape(context.name)}".')


@config_group.command("set-context")
@click.argument("name")
@click.option("--registry", help="Registry request endpoint, e.g. tcp://10.0.0.5:7700.")
@click.option("--events", help="Registry events endpoint, e.g. tcp://10.0.0.5:7701.")
@click.option("--server-key", help="The registry's public key (ecsm-operator keys show).")
@click.option("--client-key", type=click.Path(dir_okay=False),
              help="This client's secret key file (ecsm-cli keys generate).")
@click.option("--ecsm", help="ECSM URL for the platform verbs, e.g. http://10.0.0.5:3001.")
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True),
              help="Overall deadline of a registry request, seconds.")
def set_context(name: str, registry: str | None, events: str | None,
                server_key: str | None, client_key: str | None, ecsm: str | None,
                request_timeout: float | None) -> None:
    """Create context NAME, or change the given fields of it (an empty value removes a
    field)."""
    if client_key:
        curve.load_pair(client_key)  # one line now rather than at the first command
        client_key = str(Path(client_key).expanduser().absolute())
    changes: dict[str, Any] = {"registry": registry, "events": events,
                               "server-key": server_key, "client-key": client_key,
                               "ecsm": ecsm, "request-timeout": request_timeout}
    context, created = contexts.set_context(_path(), name, changes)
    click.echo(f'Context "{escape(context.name)}" {"created" if created else "modified"}.')


# -- keys --------------------------------------------------------------------------------


@click.group("keys")
def keys_group() -> None:
    """CURVE keys of this client."""


def _generate(out: Path) -> tuple[Path, bool]:
    """The secret key file of a pair at ``out`` (``out.key`` + ``out.key_secret``) and
    whether it is new. A missing directory is created 0700; in an existing one the pair
    is made in a private temporary directory and moved in, so the directory's own mode
    is left alone."""
    name = out.name.removesuffix(".key_secret")
    directory = out.parent
    secret = directory / f"{name}.key_secret"
    public = directory / f"{name}.key"
    if secret.exists():
        curve.load_pair(secret)
        return secret, False
    if not directory.exists():
        curve.generate(directory, name)
        return secret, True
    try:
        with tempfile.TemporaryDirectory(dir=directory, prefix=".keys-") as tmp:
            tmp_public, tmp_secret = curve.generate(Path(tmp), name)
            os.replace(tmp_secret, secret)
            os.replace(tmp_public, public)
    except OSError as e:
        raise ConfigError(f"cannot write the key pair in {directory}: {e.strerror}") from None
    return secret, True


@keys_group.command("generate")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Where the pair goes: PATH.key (public) and PATH.key_secret (secret, "
              "0600). Default: ~/.ecsm-cli.d/keys/client.")
def keys_generate(out: str | None) -> None:
    """Create a client key pair (an existing one is kept) and print its public key."""
    path = Path(out).expanduser() if out else Path.home() / ".ecsm-cli.d" / "keys" / "client"
    try:
        secret, created = _generate(path.absolute())
    except OSError as e:
        raise ConfigError(f"cannot create the key pair {path}: {e.strerror}") from None
    public = curve.load_pair(secret).public.decode()
    click.echo(public)
    said = "created" if created else "exists already (kept)"
    click.echo(f"""\
secret key {secret}: {said}; keep it private (mode 0600).
Next steps:
  1. on the device, let this key in:
       ecsm-operator keys authorize NAME {public} --role read|write
  2. here, with the device's address and its key (ecsm-operator keys show):
       ecsm-cli config set-context CONTEXT --registry tcp://DEVICE:7700 \\
         --events tcp://DEVICE:7701 --server-key SERVER_KEY \\
         --client-key {secret} --ecsm http://DEVICE:3001
       ecsm-cli config use-context CONTEXT""", err=True)


# -- link --------------------------------------------------------------------------------


@click.group("link")
def link_group() -> None:
    """The link agents: one per remote context, holding its connections open."""


def _plan(ctx: CliContext) -> tuple[connection.Target, Any, AgentFiles]:
    target = connection.command_target(ctx)
    if not target.secured:
        where = f"context {target.context}" if target.context else "the registry in effect"
        raise ConfigError(f"{where} is not remote ({target.endpoint}): the link agent "
                          f"serves tcp:// endpoints with CURVE keys")
    target.keys()  # a bad key file is one line here, not a dead agent
    settings, files = connection.agent_plan(ctx.config, target)
    return target, settings, files


@link_group.command("up")
@click.option("--wait", "wait_s", type=float, default=None,
              help="Seconds to wait for the connection (default: the request deadline).")
@pass_cli
def link_up(ctx: CliContext, wait_s: float | None) -> None:
    """Start the link agent of the context in effect and wait until it is connected."""
    target, settings, files = _plan(ctx)
    try:
        control.ensure(settings, files)
    except OSError as e:
        raise ConfigError(f"cannot start the link agent in {files.dir}: {e.strerror}") from None
    deadline = time.monotonic() + (target.deadline if wait_s is None else wait_s)
    doc: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        _, doc = control.status(files)
        if doc and doc.get("requests", {}).get("connected"):
            click.echo(f"link {escape(settings.name)} up: pid {doc['pid']}, connected to "
                       f"{escape(target.endpoint)}")
            return
        time.sleep(0.05)
    why = (doc or {}).get("requests", {}).get("lastError") or "no answer"
    pid = f"pid {doc['pid']}" if doc else "not running"
    raise Unavailable(f"link {settings.name} ({pid}) is not connected to {target.endpoint} "
                      f"yet: {why}; it keeps trying (ecsm-cli link status)")


def _names(ctx: CliContext) -> list[str]:
    """Every agent directory and every remote context, in order."""
    root = link_root(os.environ, Path.home())
    names = [p.name for p in control.agent_dirs(root)]
    try:
        for entry in contexts.load(_path()).entries():
            name = str(entry.get("name", ""))
            if entry.get("server-key") and name not in names:
                names.append(name)
    except ConfigError as e:
        click.echo(f"warning: {e}", err=True)
    return names


@link_group.command("status")
@pass_cli
def link_status(ctx: CliContext) -> None:
    """Show every link agent: running, pid, connected, endpoint, requests, idle time."""
    rows: list[list[Any]] = []
    for name in _names(ctx):
        files = agent_files(name, os.environ, Path.home())
        agent, doc = control.status(files)
        if agent is None:
            rows.append([name, "no", "", "", "", "", "", "", "", ""])
            continue
        if doc is None:
            rows.append([name, "yes", agent.pid, "?", agent.settings.get("endpoint"),
                         "", "", "", "", "not answering"])
            continue
        req, ev = doc.get("requests") or {}, doc.get("events") or {}
        rtt = doc.get("lastRoundTrip")
        rows.append([name, "yes", doc.get("pid"), "yes" if req.get("connected") else "no",
                     req.get("endpoint"), doc.get("forwarded"),
                     "" if rtt is None else f"{rtt * 1000:.0f}ms",
                     format_duration(float(doc.get("idle", 0))),
                     ("yes" if ev.get("connected") else "no") if ev else "-",
                     "" if req.get("connected") else req.get("lastError")])
    if not rows:
        click.echo("No link agents and no remote contexts.", err=True)
        return
    print_table(("context", "running", "pid", "connected", "endpoint", "requests",
                 "last-rtt", "idle", "events", "last-error"), rows)


@link_group.command("down")
@click.argument("names", nargs=-1)
@click.option("--all", "everyone", is_flag=True, help="Stop every link agent.")
@pass_cli
def link_down(ctx: CliContext, names: tuple[str, ...], everyone: bool) -> None:
    """Stop the link agent of NAME... (default: of the context in effect)."""
    root = link_root(os.environ, Path.home())
    if everyone:
        targets = [p.name for p in control.agent_dirs(root)]
    elif names:
        targets = [contexts.check_name(n) for n in names]
    else:
        targets = [_plan(ctx)[1].name]
    for name in targets:
        pid = control.stop(agent_files(name, os.environ, Path.home()))
        if pid is None:
            click.echo(f"link {escape(name)} is not running")
        else:
            click.echo(f"link {escape(name)} stopped (pid {pid})")
