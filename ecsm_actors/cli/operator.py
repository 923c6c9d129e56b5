"""``ecsm-operator``: run the supervisor daemon and drive it through its control socket.

Runs in the operator's shell. ``run`` is the daemon in the foreground (systemd);
``start`` detaches it and returns once every child is ready; every other verb is one
request to the control socket of the run dir's supervisor (see
:mod:`ecsm_actors.supervisor.client`). ``start NAME`` / ``stop NAME`` act on one child,
``start`` / ``stop`` without a name on the daemon.

Errors: one line ``error: …`` on stderr and exit 1 (a traceback only with ``-v``); a
missing daemon says ``error: no supervisor running in <run dir> (control socket …)``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import click
import yaml

from ecsm_actors import curve
from ecsm_actors.cli import completion, entry, operator_metrics, store_migrate
from ecsm_actors.cli import operator_output as out
from ecsm_actors.config import Config, load_config
from ecsm_actors.drill.cli import drill as drill_command
from ecsm_actors.errors import ConfigError, ControlError, EcsmActorsError
from ecsm_actors.registry import authorized
from ecsm_actors.registry.authorized import Role
from ecsm_actors.supervisor.client import SupervisorClient
from ecsm_actors.supervisor.rundir import running_supervisor

POLL = 0.05


class OperatorContext:
    def __init__(self, run_dir: str | None, conf: str | None, verbose: bool) -> None:
        self.run_dir = run_dir
        self.conf = conf
        self.verbose = verbose
        self._config: Config | None = None
        #: Settings given by the daemon's flags (``--store``, ``--etcd-endpoints``),
        #: passed to the daemon as environment.
        self.daemon_settings: dict[str, str] = {}

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.conf, overrides={"run.dir": self.run_dir})
        return self._config

    def client(self) -> SupervisorClient:
        return SupervisorClient(self.config)

    def daemon_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["ECSM_ACTORS_RUN_DIR"] = str(self.config.run_dir)
        if self.conf:
            env["ECSM_ACTORS_CONF"] = os.path.abspath(self.conf)
        env.update(self.daemon_settings)
        return env

    def daemon_args(self, simulate: bool, apply: str | None, children: str | None) -> list[str]:
        args = ["--simulate"] if simulate else []
        if apply:
            args += ["--apply", os.path.abspath(apply)]
        if children:
            args += ["--children", os.path.abspath(children)]
        return args


pass_op = click.make_pass_decorator(OperatorContext)


def _daemon_setting(variable: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def keep(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None:
            ctx.find_object(OperatorContext).daemon_settings[variable] = str(value)

    return keep

_daemon_options = [
    click.option("--simulate", is_flag=True, help="Start an ECSM simulator and use it."),
    click.option("--apply", "apply_dir", type=click.Path(file_okay=False),
                 help="Apply every manifest in DIR once the registry is ready."),
    click.option("--children", type=click.Path(dir_okay=False),
                 help="Child table (TOML/JSON) replacing the built-in one."),
    click.option("--store", type=click.Choice(["lmdb", "etcd"]), expose_value=False,
                 callback=_daemon_setting("ECSM_ACTORS_STORE_BACKEND"),
                 help="Store backend (store.backend): lmdb on this computer, or etcd."),
    click.option("--etcd-endpoints", metavar="URL,URL", expose_value=False,
                 callback=_daemon_setting("ECSM_ACTORS_STORE_ETCD_ENDPOINTS"),
                 help="etcd client URLs (store.etcd_endpoints), with --store etcd."),
]


def daemon_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_daemon_options):
        f = option(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks.")
@click.option("--conf", type=click.Path(dir_okay=False), envvar="ECSM_ACTORS_CONF",
              help="Config file (TOML).")
@click.option("--run-dir", help="Run directory of the instance (env ECSM_ACTORS_RUN_DIR).")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, conf: str | None, run_dir: str | None) -> None:
    """Run the ecsm-actors supervisor and drill its children."""
    ctx.obj = OperatorContext(run_dir, conf, verbose)


@cli.command()
@daemon_options
@pass_op
def run(op: OperatorContext, simulate: bool, apply_dir: str | None,
        children: str | None) -> None:
    """Run the supervisor in the foreground (for systemd); Ctrl-C stops it gracefully."""
    from ecsm_actors.supervisor import daemon

    os.environ.update(op.daemon_env())
    raise click.exceptions.Exit(daemon.main(op.daemon_args(simulate, apply_dir, children)))


@cli.command()
@click.argument("name", required=False, shell_complete=completion.child_names)
@daemon_options
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for ready.")
@pass_op
def start(op: OperatorContext, name: str | None, simulate: bool, apply_dir: str | None,
          children: str | None, timeout: float) -> None:
    """Start the daemon (detached; returns once every child is ready), or child NAME."""
    if name is not None:
        op.client().start(name)
        row = _wait_child(op, name, lambda r: r["state"] == "RUNNING", timeout,
                          fail=lambda r: r["state"] in ("HOLD-DOWN", "EXITED"))
        click.echo(f"{name} running (pid {row['pid']})")
        return
    cfg = op.config
    other = running_supervisor(cfg)
    if other is not None:
        raise ControlError(f"a supervisor (pid {other}) is already running in {cfg.run_dir}")
    cfg.ensure_run_dir()
    log_path = cfg.log_dir / "supervisor.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ecsm_actors", "supervisor",
             *op.daemon_args(simulate, apply_dir, children)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=op.daemon_env(), start_new_session=True, close_fds=True)
    status = _wait_ready(op, proc, log_path, timeout)
    names = ", ".join(c["name"] for c in status["children"])
    click.echo(f"supervisor pid {status['pid']} ready in {cfg.run_dir}: {names}")
    proc.returncode = 0  # detached on purpose: it outlives this command


def _wait_ready(op: OperatorContext, proc: subprocess.Popen[bytes], log_path: os.PathLike[str],
                timeout: float) -> dict[str, Any]:
    client = op.client()
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise ControlError(f"the supervisor exited with code {code}: "
                               f"{out.last_line(log_path)} (log: {log_path})")
        try:
            status = client.status()
        except ControlError:
            time.sleep(POLL)
            continue
        if status["failed"]:
            bad = "; ".join(f"{f['name']} is {f['state']}: {f['reason']}"
                            for f in status["failed"])
            raise ControlError(f"{bad} (the supervisor, pid {status['pid']}, keeps "
                               "retrying; see ecsm-operator logs NAME)")
        if status["ready"]:
            return status
        time.sleep(POLL)
    waiting = ", ".join(f"{c['name']} {c['state']}" for c in status.get("children", [])
                        if c["state"] != "RUNNING" and not c["held"]) or "supervisor"
    raise ControlError(f"not ready after {timeout:g}s: {waiting} (log: {log_path})")


@cli.command()
@click.argument("name", required=False, shell_complete=completion.child_names)
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait.")
@pass_op
def stop(op: OperatorContext, name: str | None, timeout: float) -> None:
    """Stop the daemon gracefully and wait, or stop child NAME (it stays stopped)."""
    client = op.client()
    if name is not None:
        client.stop(name)
        _wait_child(op, name, lambda r: r["state"] in ("STOPPED", "EXITED"), timeout)
        click.echo(f"{name} stopped (stays stopped until: ecsm-operator start {name})")
        return
    pid = client.shutdown()["pid"]
    deadline = time.monotonic() + timeout
    while running_supervisor(op.config) is not None:
        if time.monotonic() > deadline:
            raise ControlError(f"the supervisor (pid {pid}) is still stopping after "
                               f"{timeout:g}s")
        time.sleep(POLL)
    click.echo(f"supervisor pid {pid} stopped")


@cli.command()
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@pass_op
def ps(op: OperatorContext, output: str) -> None:
    """List the children: NAME STATE PID UPTIME RESTARTS LAST-EXIT HEARTBEAT-AGE QUEUE ROLE."""
    rows = op.client().ps()
    click.echo(json.dumps(rows, indent=2) if output == "json" else out.ps_table(rows))


@cli.command()
@click.argument("name", shell_complete=completion.child_names)
@click.option("-s", "--signal", "signame", default="KILL", show_default=True,
              help="Signal name or number (KILL, TERM, STOP, CONT, 9…).")
@pass_op
def kill(op: OperatorContext, name: str, signame: str) -> None:
    """Send a signal to child NAME (a fault drill: the supervisor heals it)."""
    row = op.client().kill(name, signame)
    click.echo(f"sent SIG{signame.upper().removeprefix('SIG')} to {name} (pid {row['pid']})")


@cli.command()
@click.argument("name", shell_complete=completion.child_names)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait.")
@pass_op
def restart(op: OperatorContext, name: str, timeout: float) -> None:
    """Restart child NAME gracefully and wait until it is ready again."""
    before = op.client().restart(name)["pid"]
    row = _wait_child(op, name, lambda r: r["state"] == "RUNNING" and r["pid"] != before,
                      timeout, fail=lambda r: r["state"] in ("HOLD-DOWN", "EXITED"))
    click.echo(f"{name} restarted (pid {row['pid']})")


@cli.command()
@click.argument("name", required=False, shell_complete=completion.child_names)
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml")
@pass_op
def stats(op: OperatorContext, name: str | None, output: str) -> None:
    """Latest liveness report, RSS and CPU of every child (or NAME); with the etcd store,
    who leads each controller kind (on any host) and for how long."""
    doc = op.client().stats(name)
    if op.config.store.backend == "etcd":
        from ecsm_actors.runtime.leader import lease_holders

        try:
            leases = lease_holders(op.config, name)
            if leases or name is None:  # none for a child that does not elect
                doc["leases"] = leases
        except EcsmActorsError as e:
            click.echo(f"warning: lease holders unknown: {e}", err=True)
    if output == "json":
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(yaml.safe_dump(doc, sort_keys=False).rstrip())


@cli.command()
@click.argument("name", shell_complete=completion.child_names)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", default=50, show_default=True, help="Lines of history.")
@pass_op
def logs(op: OperatorContext, name: str, follow: bool, lines: int) -> None:
    """Print the log of child NAME (or ``supervisor``)."""
    out.print_log(op.config.log_dir, name, lines=lines, follow=follow)


def _wait_child(op: OperatorContext, name: str, done: Callable[[dict[str, Any]], bool],
                timeout: float, fail: Callable[[dict[str, Any]], bool] | None = None,
                ) -> dict[str, Any]:
    client = op.client()
    deadline = time.monotonic() + timeout
    while True:
        row = next(r for r in client.ps() if r["name"] == name)
        if done(row):
            return row
        if fail is not None and fail(row):
            raise ControlError(f"{name} is {row['state']}: {row['reason']}")
        if time.monotonic() > deadline:
            raise ControlError(f"{name} is still {row['state']} after {timeout:g}s")
        time.sleep(POLL)


@cli.group("keys")
def keys_group() -> None:
    """CURVE keys of the registry's remote endpoints: its own, and who may connect.

    Changes apply within a second, without a restart; a revoked key is cut off (its
    requests get no answer, its event stream stops)."""


@keys_group.command("show")
@pass_op
def keys_show(op: OperatorContext) -> None:
    """Print the registry's public key (Z85), creating its key pair if absent."""
    cfg = op.config
    cfg.ensure_run_dir()
    click.echo(authorized.server_pair(cfg.run_dir).public.decode("ascii"))


class _KeyArgumentCommand(click.Command):
    """A command whose last argument is a Z85 key, which may start with ``-`` (and hold
    ``h``): such a token is moved after ``--``, so it is read as the argument it is, not
    as options (``-h`` among them)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" not in args:
            keys = [a for a in args if a.startswith("-") and curve.looks_like_key(a)]
            if keys:
                args = [a for a in args if a not in keys] + ["--", *keys]
        return super().parse_args(ctx, args)


@keys_group.command("authorize", cls=_KeyArgumentCommand)
@click.argument("name")
@click.argument("public_key", metavar="PUBLIC_KEY")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.READ.value,
              show_default=True, help="read: get, list, watch; write: everything.")
@pass_op
def keys_authorize(op: OperatorContext, name: str, public_key: str, role: str) -> None:
    """Let the client key PUBLIC_KEY connect as NAME (or change NAME's key or role).

    PUBLIC_KEY is the Z85 key ``ecsm-cli keys generate`` printed (quote it: it holds
    shell characters), or its ``.key`` file."""
    try:
        key = curve.check_public_key(public_key, "PUBLIC_KEY").decode("ascii")
    except ConfigError:
        if not os.path.isfile(os.path.expanduser(public_key)):
            raise ConfigError("PUBLIC_KEY is neither a CURVE public key (40 Z85 "
                              "characters) nor a key file") from None
        key = curve.load_public(public_key).decode("ascii")
    path = authorized.authorized_keys_path(op.config.run_dir)
    entry, replaced = authorized.authorize(path, name, key, Role(role))
    click.echo(f"{entry.name} {'updated' if replaced else 'authorized'}: role {entry.role}, "
               f"key {entry.key}")


@keys_group.command("revoke")
@click.argument("name")
@pass_op
def keys_revoke(op: OperatorContext, name: str) -> None:
    """Withdraw NAME's access; its open connections are cut off."""
    entry = authorized.revoke(authorized.authorized_keys_path(op.config.run_dir), name)
    click.echo(f"{entry.name} revoked (key {entry.key})")


@keys_group.command("list")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@pass_op
def keys_list(op: OperatorContext, output: str) -> None:
    """List the authorized keys: NAME ROLE KEY (invalid lines of the file on stderr)."""
    path = authorized.authorized_keys_path(op.config.run_dir)
    current = authorized.read(path)
    warning = current.warning(path)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    rows = [{"name": e.name, "role": e.role.value, "key": e.key} for e in current.entries]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    width = max([len("NAME")] + [len(r["name"]) for r in rows])
    click.echo(f"{'NAME':<{width}}  ROLE   KEY")
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['role']:<5}  {r['key']}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ecsm-operator``."""
    return entry.run(cli, "ecsm-operator", argv)


# `ecsm-operator drill` is owned by the drill package.
cli.add_command(drill_command)
cli.add_command(store_migrate.store_group)
cli.add_command(operator_metrics.metrics)
cli.add_command(completion.completion_command("ecsm-operator"))
