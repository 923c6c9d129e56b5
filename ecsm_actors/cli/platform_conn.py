"""Where ecsm-cli's platform verbs find ECSM: flags, ECSMCLI_* env, .ecsm-cli.yaml, config.

Runs in the ecsm-cli process. Per key (``host``, ``port``, ``protocol``), the first of:
the ``--host/--port/--protocol`` flag, ``ECSMCLI_HOST/PORT/PROTOCOL``, the ``ecsm`` URL of
the context in effect (:mod:`.connection`: ``--context``, else the current context), the
``.ecsm-cli.yaml`` file (``--ecsm-config FILE``, else the working directory's, else
``$HOME``'s), and finally the project config ``cfg.ecsm`` (conf file,
``ECSM_ACTORS_ECSM_*``, or the address of the run dir's simulator). A config file that
exists but cannot be read is warned about, as the Go CLI did; a bad value is a
ConfigError naming where it came from.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from ecsm_actors.cli import connection
from ecsm_actors.config import EcsmSettings
from ecsm_actors.ecsm.clientset import Clientset
from ecsm_actors.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
CONFIG_NAME = ".ecsm-cli.yaml"
KEYS = ("host", "port", "protocol")
META = "ecsm_connection"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None:
        ctx.meta.setdefault(META, {})[param.name] = value
    return value


def ecsm_options(f: F) -> F:
    """``--host``, ``--port``, ``--protocol`` and ``--ecsm-config`` on a platform verb."""
    options = [
        click.option("--ecsm-config", type=click.Path(dir_okay=False), expose_value=False,
                     callback=_remember, help=f"ECSM CLI config (default: ./{CONFIG_NAME}, "
                     f"then ~/{CONFIG_NAME})."),
        click.option("--protocol", type=click.Choice(["http", "https"]), expose_value=False,
                     callback=_remember, help="ECSM protocol (env ECSMCLI_PROTOCOL)."),
        click.option("--port", type=int, expose_value=False, callback=_remember,
                     help="ECSM port (env ECSMCLI_PORT)."),
        click.option("--host", expose_value=False, callback=_remember,
                     help="ECSM host (env ECSMCLI_HOST; default: the run dir's simulator or "
                     "the config)."),
    ]
    for option in options:
        f = option(f)
    return f


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        click.echo(f"warning: cannot read {path}: {e}", err=True)
        return {}
    return doc if isinstance(doc, dict) else {}


def config_file(explicit: str | None, cwd: Path, home: Path) -> dict[str, Any]:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"ECSM CLI config {explicit} does not exist")
        return _read_yaml(path)
    for base in (cwd, home):
        path = base / CONFIG_NAME
        if path.is_file():
            return _read_yaml(path)
    return {}


def resolve(base: EcsmSettings, flags: Mapping[str, Any], environ: Mapping[str, str],
            cwd: Path, home: Path,
            context_values: Mapping[str, Any] | None = None) -> EcsmSettings:
    """The ECSM settings after flags > env > the context's ``ecsm`` URL (as
    ``context_values``) > .ecsm-cli.yaml > ``base``."""
    file_values = config_file(flags.get("ecsm_config"), cwd, home)
    values: dict[str, Any] = {}
    for key in KEYS:
        for source, table in (("--" + key, flags), (f"ECSMCLI_{key.upper()}", environ),
                              ("the context's ecsm URL", context_values or {}),
                              (CONFIG_NAME, file_values)):
            value = table.get(f"ECSMCLI_{key.upper()}" if table is environ else key)
            if value is not None and value != "":
                values[key] = _check(key, value, source)
                break
    return dataclasses.replace(base, **values)


def _check(key: str, value: Any, source: str) -> Any:
    if key == "port":
        try:
            port = int(str(value))
        except ValueError as e:
            raise ConfigError(f"ECSM port from {source}: invalid value {value!r}") from e
        if not 0 < port < 65536:
            raise ConfigError(f"ECSM port from {source}: {port} is not a port 1-65535")
        return port
    text = str(value).strip()
    if key == "protocol" and text not in ("http", "https"):
        raise ConfigError(f"ECSM protocol from {source}: expected http or https, got {text!r}")
    if not text:
        raise ConfigError("host, port, and protocol must be specified")
    return text


def clientset(base: EcsmSettings) -> Clientset:
    """A clientset for the current command's connection options."""
    ctx = click.get_current_context()
    flags: dict[str, Any] = {}
    for c in (ctx, *_parents(ctx)):
        for k, v in c.meta.get(META, {}).items():
            flags.setdefault(k, v)
    context_values = connection.ecsm_values(ctx.find_root().obj, Path.home())
    settings = resolve(base, flags, os.environ, Path.cwd(), Path.home(), context_values)
    return Clientset.from_settings(settings)


def _parents(ctx: click.Context) -> list[click.Context]:
    out = []
    while ctx.parent is not None:
        ctx = ctx.parent
        out.append(ctx)
    return out
