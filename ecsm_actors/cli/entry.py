"""The one catch-all of a CLI process, shared by ``ecsm-cli`` and ``ecsm-operator``.

An :class:`~ecsm_actors.errors.EcsmActorsError` prints one line ``error: …`` on stderr
(control characters a peer put in the message escaped, so it stays one line) and exits 1
(with the traceback only under ``-v``); a registry request past its deadline says, for a
write, whether it was applied and how to check (:mod:`.outcome`); a refusal of the key's
role starts ``error: forbidden:``. Click's usage errors exit 2; the code a command passes
to ``ctx.exit(n)`` is returned as the process exit code.
"""

from __future__ import annotations

import sys
import traceback

import click

from ecsm_actors.api.echo import escape
from ecsm_actors.cli.outcome import deadline_line
from ecsm_actors.errors import DeadlineExceeded, EcsmActorsError, Forbidden


def run(group: click.Group, prog_name: str, argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    try:
        # Without standalone mode click *returns* the code of ``ctx.exit(n)``.
        code = group.main(args=args, prog_name=prog_name, standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool):
            return code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except DeadlineExceeded as e:
        if verbose:
            traceback.print_exc()
        click.echo(f"error: {escape(deadline_line(e))}", err=True)
        return 1
    except EcsmActorsError as e:
        if verbose:
            traceback.print_exc()
        kind = "forbidden: " if isinstance(e, Forbidden) else ""
        click.echo(f"error: {kind}{escape(str(e))}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
