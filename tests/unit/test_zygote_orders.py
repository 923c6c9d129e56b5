"""The zygote's orders: what it agrees to fork, and how a bad order is refused."""

from __future__ import annotations

import sys

import pytest

from ecsm_actors.supervisor.zygote import orders
from ecsm_actors.supervisor.zygote.child import exit_code

PY = sys.executable


@pytest.mark.parametrize(("argv", "expected"), [
    ((PY, "-m", "ecsm_actors", "registry"), True),
    ((PY, "/x/worker.py", "--name", "a"), True),
    (("/usr/bin/python3.9", "-m", "ecsm_actors", "registry"), PY == "/usr/bin/python3.9"),
    ((PY, "-u", "-m", "ecsm_actors"), False),  # an interpreter option changes the interpreter
    ((PY, "-m"), False),
    ((PY, "-c", "print(1)"), False),
    (("/bin/sleep", "1"), False),
])
def test_only_what_this_interpreter_would_run_is_forked(argv: tuple[str, ...],
                                                        expected: bool) -> None:
    assert orders.forkable(argv) is expected


def test_an_order_round_trips_and_a_bad_one_is_refused_with_a_reason() -> None:
    order = orders.decode_order(orders.encode_order((PY, "-m", "ecsm_actors", "registry"),
                                                    {"A": "1"}))
    assert order.argv == (PY, "-m", "ecsm_actors", "registry") and order.env == {"A": "1"}
    for bad, why in ((b"\xff", "not JSON"), (b"[]", "not a JSON object"),
                     (b'{"argv": "x", "env": {}}', "argv"),
                     (b'{"argv": ["/bin/sh"], "env": {}}', "cannot fork"),
                     (orders.encode_order((PY, "x.py"), {}).replace(b"{}", b'{"A": 1}'), "env")):
        with pytest.raises(ValueError, match=why):
            orders.decode_order(bad)


def test_a_reply_is_a_pid_or_the_zygote_s_error() -> None:
    assert orders.decode_reply(orders.encode_reply(pid=42)) == 42
    with pytest.raises(ValueError, match="no such file"):
        orders.decode_reply(orders.encode_reply(error="no such file"))
    assert orders.is_ready_message(orders.ready_message(7), 7)
    assert not orders.is_ready_message(orders.ready_message(7), 8)


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (3, 3), (256, 0),
                                              ("bye", 1), (True, 1)])
def test_a_forked_child_exits_with_the_status_sys_exit_gives(code: object, status: int) -> None:
    assert exit_code(code) == status
