"""What ``ecsm-cli`` says when a registry request passes its deadline.

Runs in the CLI process. The client's :class:`~ecsm_actors.errors.DeadlineExceeded` says
the endpoint, the op, the attempts and the seconds, and for a write whether it is known
not to be applied or unknown (``applied``). A verb that writes names, around its writes,
the command that shows whether they were applied (:func:`checked_by`); the CLI's
catch-all (:mod:`.entry`) prints :func:`deadline_line`: one line with the verdict and,
unless the write is known not to be applied, that command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ecsm_actors.errors import DeadlineExceeded

_CHECK = "check_command"


@contextmanager
def checked_by(command: str) -> Iterator[None]:
    """Writes in this block that pass their deadline name ``command`` (e.g. ``ecsm-cli get
    esvc web``) as the way to see whether they were applied."""
    try:
        yield
    except DeadlineExceeded as e:
        if getattr(e, _CHECK, None) is None:
            setattr(e, _CHECK, command)
        raise


def deadline_line(error: DeadlineExceeded) -> str:
    """The one line for ``error`` (without the ``error:`` prefix)."""
    text = str(error)
    check = getattr(error, _CHECK, None)
    if check is None:
        return text  # a read: it timed out, the client said after how long
    if error.applied is True:
        return f"{text}; it was applied: see it with {check}"
    if error.applied is False:
        if "not applied" not in text:
            text += "; not applied: the request never reached the registry"
        return f"{text}; run the command again"
    if "may or may not" not in text:
        text += "; it may or may not have been applied"
    return f"{text}; check with: {check}"
