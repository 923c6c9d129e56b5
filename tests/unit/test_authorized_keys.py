"""The authorized-keys file: parsing with invalid lines skipped and named, edits that keep
every other line, atomic 0600 writes, a file writable by others trusted by nobody, and
the change detection the registry runs at each heartbeat and ZAP request."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import zmq

from ecsm_actors.errors import ConfigError
from ecsm_actors.registry import authorized
from ecsm_actors.registry.authorized import KeysFile, Role

ALICE = zmq.curve_keypair()[0].decode()
BOB = zmq.curve_keypair()[0].decode()
CAROL = zmq.curve_keypair()[0].decode()


def test_valid_lines_apply_and_each_invalid_line_is_named_in_one_warning() -> None:
    text = (f"# comment\n\nalice write {ALICE}\n"
            f"bob admin {BOB}\n"              # unknown role
            f"carol read not-a-key\n"          # bad key
            f"-x read {CAROL}\n"               # bad name
            f"dave read {CAROL} extra\n"       # extra field
            f"alice read {CAROL}\n"            # name used above
            f"erin read {ALICE}\n"             # key used above
            f"  carol   read   {CAROL}  \n")
    keys = authorized.parse(text)
    assert [(e.name, e.role, e.key) for e in keys.entries] == [
        ("alice", Role.WRITE, ALICE), ("carol", Role.READ, CAROL)]
    assert keys.by_key[CAROL].name == "carol"
    warning = keys.warning("authorized_keys")
    assert warning is not None and "\n" not in warning
    assert warning.startswith("authorized_keys: 6 invalid line(s) ignored (line 4: ")
    for fragment in ("line 4: invalid role 'admin'", "line 5: PUBLICKEY is not a CURVE",
                     "line 6: invalid key name '-x'", "line 7: expected NAME ROLE",
                     "line 8: name alice already used", "; and 1 more",
                     "the other 2 key(s) apply"):
        assert fragment in warning


def test_a_key_beginning_with_a_hash_is_a_key_not_a_comment() -> None:
    key = "#" + ALICE[1:]
    keys = authorized.parse(f"alice write {key}\n")
    assert keys.by_name["alice"].key == key and not keys.problems


def test_authorize_and_revoke_keep_comments_and_invalid_lines_and_write_0600(
        tmp_path: Path) -> None:
    path = tmp_path / "keys" / "authorized_keys"
    entry, replaced = authorized.authorize(path, "alice", ALICE, Role.WRITE)
    assert (entry.name, replaced) == ("alice", False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.write_text(path.read_text() + "# kept\nbroken line\n")
    authorized.authorize(path, "bob", BOB, Role.READ)
    _, replaced = authorized.authorize(path, "alice", ALICE, Role.READ)
    assert replaced
    authorized.revoke(path, "bob")
    text = path.read_text()
    assert "# kept\nbroken line\n" in text and "bob" not in text
    assert [(e.name, e.role) for e in authorized.read(path).entries] == [("alice", Role.READ)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_bad_input_to_authorize_or_revoke_is_one_line_and_changes_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "authorized_keys"
    authorized.authorize(path, "alice", ALICE, Role.WRITE)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="is not a CURVE public key"):
        authorized.authorize(path, "bob", "short", Role.READ)
    with pytest.raises(ConfigError, match="already authorized as alice"):
        authorized.authorize(path, "bob", ALICE, Role.READ)
    with pytest.raises(ConfigError, match="invalid key name"):
        authorized.authorize(path, "bad name", BOB, Role.READ)
    with pytest.raises(ConfigError, match="no authorized key named 'bob'"):
        authorized.revoke(path, "bob")
    with pytest.raises(ConfigError, match="expected read or write"):
        authorized.check_role("admin")
    assert path.read_bytes() == before


def test_a_file_writable_by_others_authorizes_nobody(tmp_path: Path) -> None:
    path = tmp_path / "authorized_keys"
    authorized.authorize(path, "alice", ALICE, Role.WRITE)
    os.chmod(path, 0o666)
    keys = authorized.read(path)
    assert not keys.entries
    assert "writable by group or others (mode 0666)" in (keys.warning(path) or "")
    authorized.authorize(path, "bob", BOB, Role.READ)  # rewriting it makes it 0600 again
    assert [e.name for e in authorized.read(path).entries] == ["alice", "bob"]


def test_the_registry_sees_a_change_and_which_keys_lost_their_access(tmp_path: Path) -> None:
    path = tmp_path / "authorized_keys"
    watched = KeysFile(path)
    assert watched.refresh() is None and not watched.current.entries  # no file: nobody
    authorized.authorize(path, "alice", ALICE, Role.WRITE)
    authorized.authorize(path, "bob", BOB, Role.READ)
    assert watched.refresh() is not None
    assert watched.refresh() is None  # unchanged: not read again
    before = watched.current
    authorized.authorize(path, "bob", BOB, Role.WRITE)  # a role change: same key, same name
    assert watched.refresh() is before
    assert watched.current.removed_from(before) == []
    before = watched.current
    authorized.revoke(path, "alice")
    authorized.authorize(path, "bob", CAROL, Role.WRITE)  # bob's key replaced
    watched.refresh()
    assert {e.name for e in watched.current.removed_from(before)} == {"alice", "bob"}
    path.unlink()
    watched.refresh()
    assert not watched.current.entries
