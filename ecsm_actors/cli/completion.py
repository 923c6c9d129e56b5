"""Shell completion of ``ecsm-cli`` and ``ecsm-operator``: click's own mechanism.

Runs in the CLI process. ``ecsm-cli completion bash|zsh|fish`` (and ``ecsm-operator
completion …``) prints the script click makes for the shell; the script calls the program
back with ``_ECSM_CLI_COMPLETE`` (``_ECSM_OPERATOR_COMPLETE``) set, and click answers with
the verbs, kinds and flags that fit. Object names come from the registry
(:func:`object_names`, :func:`kind_names`: one LIST of versions, no object decoded) and
child names from the supervisor's control socket (:func:`child_names`), each within
:data:`TIMEOUT` seconds; anything that fails — no registry, no supervisor, a slow link,
a bad flag — completes silently to nothing, never an error on the user's prompt.
"""

from __future__ import annotations

from collections.abc import Callable

import click
from click.shell_completion import CompletionItem, get_completion_class

from ecsm_actors import api
from ecsm_actors.cli import connection
from ecsm_actors.cli.root_options import CliContext

#: Deadline of one completion request to the registry or the supervisor, seconds.
TIMEOUT = 1.5
SHELLS = ("bash", "zsh", "fish")

#: The words ``ecsm-cli`` accepts for each kind, the first the canonical one.
KIND_WORDS = {
    "ECSMService": ("ecsmservices", "ecsmservice", "esvc"),
    "ECSMHpa": ("ecsmhpas", "ecsmhpa", "hpa"),
}

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def _registry_names(ctx: click.Context, kind: str) -> list[str]:
    obj = ctx.find_root().ensure_object(CliContext)
    timeout = TIMEOUT if obj.request_timeout is None else min(obj.request_timeout, TIMEOUT)
    obj.request_timeout = timeout
    namespace = ctx.params.get("namespace") or obj.namespace or "default"
    with ctx.scope():  # connection resolves through the current context; closed after
        client = connection.registry_client(obj)
        versions = client.list_versions(kind, namespace)
    return sorted(key.split("/", 1)[-1] for key, _ in versions.versions)


def _names(ctx: click.Context, kind: str | None, incomplete: str) -> list[CompletionItem]:
    if kind is None:
        return []
    try:
        names = _registry_names(ctx, kind)
    except Exception:  # noqa: BLE001 - completion never fails on the user's prompt
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def object_names(kind: str) -> Completer:
    """Complete the NAME of an object of ``kind`` (in the command's namespace)."""
    def complete(ctx: click.Context, param: click.Parameter,
                 incomplete: str) -> list[CompletionItem]:
        return _names(ctx, kind, incomplete)
    return complete


def _kind_of(ctx: click.Context) -> str | None:
    word = ctx.params.get("kind")
    if not isinstance(word, str):
        return None
    try:
        return api.resolve_kind(word)
    except Exception:  # noqa: BLE001 - not a kind (yet): nothing to complete
        return None


def kind_words(ctx: click.Context, param: click.Parameter,
               incomplete: str) -> list[CompletionItem]:
    """Complete a KIND argument: the short and long words of each kind."""
    return [CompletionItem(w) for words in KIND_WORDS.values() for w in words
            if w.startswith(incomplete)]


def kind_names(ctx: click.Context, param: click.Parameter,
               incomplete: str) -> list[CompletionItem]:
    """Complete a NAME after a KIND argument of the same command."""
    return _names(ctx, _kind_of(ctx), incomplete)


def child_names(ctx: click.Context, param: click.Parameter,
                incomplete: str) -> list[CompletionItem]:
    """Complete the NAME of a supervisor child (from its control socket's ``ps``)."""
    from ecsm_actors.config import load_config
    from ecsm_actors.supervisor.client import SupervisorClient

    try:
        root = ctx.find_root()
        run_dir, conf = root.params.get("run_dir"), root.params.get("conf")
        cfg = load_config(conf, overrides={"run.dir": run_dir})
        rows = SupervisorClient(cfg, timeout=TIMEOUT).ps()
        names = sorted(str(row["name"]) for row in rows)
    except Exception:  # noqa: BLE001 - completion never fails on the user's prompt
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def completion_command(prog_name: str) -> click.Command:
    """``PROG completion bash|zsh|fish``: print the completion script of ``prog_name``."""
    var = "_{}_COMPLETE".format(prog_name.replace("-", "_").upper())

    @click.command("completion")
    @click.argument("shell", type=click.Choice(SHELLS))
    @click.pass_context
    def command(ctx: click.Context, shell: str) -> None:
        cls = get_completion_class(shell)
        assert cls is not None  # one of SHELLS
        root = ctx.find_root().command
        click.echo(cls(root, {}, prog_name, var).source())

    command.help = (
        f"Print the {prog_name} completion script for SHELL. Enable it with, in ~/.bashrc: "
        f'eval "$({prog_name} completion bash)"; in ~/.zshrc: eval "$({prog_name} '
        f'completion zsh)"; for fish: {prog_name} completion fish > '
        f"~/.config/fish/completions/{prog_name}.fish")
    return command
