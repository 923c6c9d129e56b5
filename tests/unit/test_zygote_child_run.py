"""A child forked by the zygote to run ``python -m ecsm_actors ...`` calls the main of the
zygote's own main module (``python -m ecsm_actors zygote`` executed it already) instead of
finding, reading and executing it again with runpy; any other module still goes through
runpy, as the interpreter would."""

from __future__ import annotations

import sys
import types
from importlib.machinery import ModuleSpec

import pytest

from ecsm_actors.supervisor.zygote import child


@pytest.fixture
def zygote_main(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    own = types.ModuleType("__main__")
    own.__spec__ = ModuleSpec("pkg.__main__", None)
    own.__file__ = "/somewhere/pkg/__main__.py"

    def main(argv: list[str]) -> int:
        calls.append(argv)
        return 3

    own.main = main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "__main__", own)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    return calls


def test_the_zygotes_own_main_module_is_run_by_calling_its_main(
        zygote_main: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(child.runpy, "run_module", lambda *a, **k: pytest.fail("runpy used"))
    code = child._run(("/usr/bin/python3", "-m", "pkg", "controller", "service"))
    assert zygote_main == [["controller", "service"]]
    assert code == 3
    assert sys.argv == ["/somewhere/pkg/__main__.py", "controller", "service"]


def test_another_module_still_runs_through_runpy(
        zygote_main: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    monkeypatch.setattr(child.runpy, "run_module", lambda name, **k: ran.append(name))
    assert child._run(("/usr/bin/python3", "-m", "other", "x")) == 0
    assert ran == ["other"] and zygote_main == []
