"""``ecsm-cli``'s platform verbs on a bad link (:mod:`ecsm_actors.cli.platform_retry`), with
a fake transport and a fake clock: reads are sent again with backoff within the command's
deadline, never past it; an action is sent once, and its lost answer says whether it was
sent and how to check."""

from __future__ import annotations

import pytest

from ecsm_actors.cli.platform_retry import RetryingReads, action_outcome
from ecsm_actors.errors import EcsmUnavailable

pytestmark = pytest.mark.timeout(10)
URL = "http://ecsm:3001/api/v1/node"


class Link:
    """Answers from a script: an exception or (status, body); records each send."""

    def __init__(self, *script: object) -> None:
        self.script = list(script)
        self.now = 0.0
        self.sent: list[tuple[str, float, tuple[float | None, float | None]]] = []

    def send(self, method: str, url: str, body: bytes | None,
             timeout: tuple[float | None, float | None]) -> tuple[int, bytes]:
        self.sent.append((method, self.now, timeout))
        answer = self.script.pop(0) if self.script else EcsmUnavailable(url, "connection reset")
        if isinstance(answer, BaseException):
            self.now += 1.0  # a failure takes a second to show
            raise answer
        return answer  # type: ignore[return-value]

    def close(self) -> None:
        pass

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def reads(link: Link, deadline: float = 10.0) -> RetryingReads:
    return RetryingReads(link, deadline, clock=lambda: link.now, sleep=link.sleep,
                         jitter=lambda: 1.0)


def test_a_read_is_sent_again_after_a_reset_and_a_503_until_it_gets_its_answer():
    link = Link(EcsmUnavailable(URL, "connection reset"), (503, b""), (200, b"{}"))
    assert reads(link).send("GET", URL, None, (3.0, 10.0)) == (200, b"{}")
    assert [t for _, t, _ in link.sent] == [0.0, 1.2, 1.6]  # backoff 0.2 s, then 0.4 s


def test_a_read_that_never_gets_through_fails_at_the_deadline_saying_how_long_it_tried():
    link = Link()
    with pytest.raises(EcsmUnavailable) as e:
        reads(link, deadline=10.0).send("GET", URL, None, (3.0, 10.0))
    assert link.now <= 10.0 and len(link.sent) == 5
    assert str(e.value) == (f"ECSM unreachable at {URL}: connection reset (5 attempts in "
                            f"8 s)")
    # each attempt waits at most the time left
    assert all(timeout[1] <= 10.0 - at for _, at, timeout in link.sent)


def test_an_error_answer_that_is_not_transient_is_not_sent_again():
    link = Link((404, b'{"status": 404}'))
    assert reads(link).send("GET", URL, None, (3.0, 10.0)) == (404, b'{"status": 404}')
    assert len(link.sent) == 1


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE"])
def test_an_action_is_sent_exactly_once_even_when_its_answer_is_lost(method: str):
    link = Link(EcsmUnavailable(URL, "timeout (read timed out)"))
    with pytest.raises(EcsmUnavailable):
        reads(link).send(method, URL, b"{}", (3.0, 10.0))
    assert len(link.sent) == 1


def test_a_lost_action_says_whether_it_was_sent_and_how_to_check():
    refused = action_outcome(EcsmUnavailable(URL, "connection refused"), "stop", "web-1")
    assert str(refused) == (f"ECSM unreachable at {URL}: connection refused; the stop of "
                            f"container web-1 was not sent")
    lost = action_outcome(EcsmUnavailable(URL, "timeout (read timed out)"), "stop", "web-1")
    assert str(lost) == (f"ECSM unreachable at {URL}: timeout (read timed out); the stop of "
                         f"container web-1 was sent but its outcome is unknown: check with "
                         f"ecsm-cli get containers --key web-1")


def test_a_refused_connection_is_not_sent_again_nothing_listens_there():
    link = Link(EcsmUnavailable(URL, "connection refused"), (200, b"{}"))
    with pytest.raises(EcsmUnavailable, match="connection refused$"):
        reads(link).send("GET", URL, None, (3.0, 10.0))
    assert len(link.sent) == 1
