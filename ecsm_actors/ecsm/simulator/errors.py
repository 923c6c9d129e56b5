"""The simulator's error answer: raised by a handler, rendered as an error envelope.

Runs inside the simulator process only. ``status`` goes into the envelope (and is used as
the HTTP code, which the client ignores, §1.7).
"""

from __future__ import annotations


class SimError(Exception):
    def __init__(self, status: int, message: str, field_errors: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field_errors = field_errors


def not_found(what: str, key: str) -> SimError:
    return SimError(404, f"{what} '{key}' not found")


def bad_request(field_errors: str, message: str = "Bad Request") -> SimError:
    return SimError(400, message, field_errors)
