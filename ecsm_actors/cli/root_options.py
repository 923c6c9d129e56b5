"""The options every ``ecsm-cli`` verb shares, before or after the verb, and the state
they fill: :class:`CliContext`.

Runs in the CLI process. The global options — ``-v``, ``--conf``, ``--run-dir``,
``--registry``, ``--context``, ``--request-timeout``, ``--no-link``, ``--host``,
``--port``, ``--protocol``, ``--ecsm-config``, ``-n/--namespace`` — are options of the
root group, and :func:`spread` gives each of them, hidden, to every command of the tree
that does not define that option itself: ``ecsm-cli --host H get nodes`` and
``ecsm-cli get nodes --host H`` mean the same. Precedence: an option after the verb
overrides the same option before it; a command's own option of the same name keeps its
own meaning after the verb (``get nodes -n X`` filters by name, ``config set-context
--registry`` is the context's endpoint), while before the verb the global meaning holds.
Flags and environment come before ``~/.ecsm-cli.yaml`` and the configuration as ever
(:mod:`.connection`, :mod:`.platform_conn`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from ecsm_actors.config import Config, load_config

F = TypeVar("F", bound=Callable[..., Any])

#: ``ctx.meta`` key of the ECSM connection flags (read by :mod:`.platform_conn`).
ECSM_META = "ecsm_connection"


@dataclass
class CliContext:
    """Options shared by every verb, and the clients built from them on first use."""

    verbose: bool = False
    conf: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    #: ``--context``, ``--request-timeout``, ``--no-link`` (see :mod:`.connection`).
    context: str | None = None
    request_timeout: float | None = None
    no_link: bool = False
    #: The global ``-n/--namespace``: the default of a verb's own ``-n``.
    namespace: str | None = None
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.conf, overrides=self.overrides)
        return self._config


pass_cli = click.make_pass_decorator(CliContext)


def _set(name: str) -> Callable[[CliContext, Any], None]:
    def apply(obj: CliContext, value: Any) -> None:
        setattr(obj, name, value)
    return apply


def _override(key: str) -> Callable[[CliContext, Any], None]:
    def apply(obj: CliContext, value: Any) -> None:
        obj.overrides[key] = value
    return apply


@dataclass(frozen=True)
class GlobalOption:
    decls: tuple[str, ...]
    kwargs: dict[str, Any]
    #: Where a value goes: a CliContext field, or (None) the ECSM connection flags.
    apply: Callable[[CliContext, Any], None] | None


GLOBAL_OPTIONS: tuple[GlobalOption, ...] = (
    GlobalOption(("-v", "--verbose"), {"is_flag": True, "default": None,
                                       "help": "Show tracebacks and debug logs."},
                 _set("verbose")),
    GlobalOption(("--conf",), {"type": click.Path(dir_okay=False), "envvar": "ECSM_ACTORS_CONF",
                               "help": "Config file (TOML; env ECSM_ACTORS_CONF)."},
                 _set("conf")),
    GlobalOption(("--run-dir",), {"help": "Run directory of the instance to talk to "
                                  "(env ECSM_ACTORS_RUN_DIR)."}, _override("run.dir")),
    GlobalOption(("--registry",), {"help": "Registry endpoint (env ECSM_ACTORS_REGISTRY; "
                                   "default: the context's, else the run dir's socket)."},
                 _override("registry.endpoint")),
    GlobalOption(("--context",), {"help": "Context of ~/.ecsm-cli.yaml to use (default: "
                                  "its current-context)."}, _set("context")),
    GlobalOption(("--request-timeout",), {
        "type": click.FloatRange(min=0, min_open=True),
        "help": "Overall deadline of a registry request, retries included, seconds "
                "(default: the context's, else registry.request_deadline)."},
        _set("request_timeout")),
    GlobalOption(("--no-link",), {"is_flag": True, "default": None,
                                  "help": "Reach a remote registry directly, not through "
                                  "the context's link agent."}, _set("no_link")),
    GlobalOption(("-n", "--namespace"), {"help": "Namespace (default: default); after a "
                                         "verb with its own -n, that verb's meaning."},
                 _set("namespace")),
    GlobalOption(("--host",), {"help": "ECSM host (env ECSMCLI_HOST; default: the run "
                               "dir's simulator or the config)."}, None),
    GlobalOption(("--port",), {"type": int, "help": "ECSM port (env ECSMCLI_PORT)."}, None),
    GlobalOption(("--protocol",), {"type": click.Choice(["http", "https"]),
                                   "help": "ECSM protocol (env ECSMCLI_PROTOCOL)."}, None),
    GlobalOption(("--ecsm-config",), {"type": click.Path(dir_okay=False),
                                      "help": "ECSM CLI config (default: ./.ecsm-cli.yaml, "
                                      "then ~/.ecsm-cli.yaml)."}, None),
)


def _callback(option: GlobalOption) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:  # also while completing: the options given count there too
            return value
        if getattr(param, "is_flag", False) and not value:
            return value  # a flag not given: leaves one given elsewhere alone
        if option.apply is None:
            assert param.name is not None
            ctx.meta.setdefault(ECSM_META, {})[param.name] = value
            return value
        obj = ctx.find_object(CliContext)
        if obj is None:  # the root, before its callback made the CliContext
            obj = ctx.find_root().ensure_object(CliContext)
        option.apply(obj, value)
        return value
    return store


def _option(option: GlobalOption, *, hidden: bool) -> click.Option:
    kwargs = dict(option.kwargs)
    if hidden:  # the environment is read once, by the root: else it would override a flag
        kwargs.pop("envvar", None)
    return click.Option(list(option.decls), expose_value=False, hidden=hidden,
                        callback=_callback(option), **kwargs)


def root_options(f: F) -> F:
    """Decorate the root group with the global options (filling its CliContext)."""
    for option in reversed(GLOBAL_OPTIONS):
        f.__click_params__ = [*getattr(f, "__click_params__", []),  # type: ignore[attr-defined]
                              _option(option, hidden=False)]
    return f


def spread(group: click.Group) -> None:
    """Give every command under ``group`` (groups included) the global options it does
    not define itself, hidden from its help: they may come after the verb."""
    for command in group.commands.values():
        taken = {opt for p in command.params for opt in getattr(p, "opts", ())}
        taken |= {opt for p in command.params for opt in getattr(p, "secondary_opts", ())}
        for option in GLOBAL_OPTIONS:
            if not taken.intersection(option.decls):
                command.params.append(_option(option, hidden=True))
        if isinstance(command, click.Group):
            spread(group=command)


def namespace_default(fallback: str | None = None) -> Callable[[click.Context, click.Parameter,
                                                                   Any], Any]:
    """A callback for a verb's own ``-n/--namespace``: when not given, the global one
    (given before the verb), else ``fallback``."""
    def resolve(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            return value
        obj = ctx.find_object(CliContext)
        return (obj.namespace if obj is not None else None) or fallback
    return resolve
