"""A file replaced atomically: new content whole, private mode, no temporary left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ecsm_actors.files import replace_atomically


def test_a_file_is_replaced_whole_and_private(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    target.chmod(0o644)
    replace_atomically(target, b"new", sync_dir=True)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_failed_replacement_keeps_the_old_file_and_leaves_no_temporary(
        tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # a directory cannot be replaced by a file
    with pytest.raises(OSError):
        replace_atomically(target, b"new")
    assert sorted(os.listdir(tmp_path)) == ["taken"]


def test_a_link_planted_at_the_temporary_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    target = tmp_path / "state"
    (tmp_path / f".state.{os.getpid()}.tmp").symlink_to(victim)
    with pytest.raises(OSError):
        replace_atomically(target, b"new")
    assert victim.read_text() == "untouched"
