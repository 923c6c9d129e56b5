"""The store's write-ahead log file and the recording of a write transaction's redo."""

from __future__ import annotations

import os
from pathlib import Path

import lmdb
import pytest

from ecsm_actors.store import wal
from ecsm_actors.store.wal import APPEND, DELETE, PUT, Header, Recording, WriteAheadLog

pytestmark = pytest.mark.timeout(30)


def header(generation: int, txnid: int = 7) -> Header:
    return Header(generation=generation, boot_id="boot-a", txnid=txnid, page_size=4096,
                  meta=bytes(range(256)) * 32)


def test_the_latest_whole_header_is_read_back_and_a_torn_one_leaves_the_other(
        tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path / "wal", 2 << 20)
    assert log.header() is None
    log.write_header(header(1, txnid=5))
    log.write_header(header(2, txnid=9))
    assert log.header() == header(2, txnid=9)
    log.close()
    with open(tmp_path / "wal", "r+b") as f:  # generation 2 lives in slot 0: tear it
        f.seek(100)
        f.write(b"\xff" * 10)
    assert WriteAheadLog(tmp_path / "wal", 2 << 20).header() == header(1, txnid=5)


def test_records_are_read_in_order_up_to_a_torn_one(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path / "wal", 2 << 20)
    log.write_header(header(1))
    for i in range(3):
        assert log.append(wal.encode([PUT, "objects", b"k%d" % i, b"v" * 1000]))
    assert [ops[2] for ops in log.records(1)] == [b"k0", b"k1", b"k2"]
    end = log.offset
    log.close()
    with open(tmp_path / "wal", "r+b") as f:  # the last record's last byte never made it
        f.seek(end - 1)
        f.write(b"\0")
    assert [ops[2] for ops in WriteAheadLog(tmp_path / "wal", 2 << 20).records(1)] == [
        b"k0", b"k1"]


def test_records_of_an_earlier_generation_are_not_read_after_a_checkpoint(
        tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path / "wal", 2 << 20)
    log.write_header(header(1))
    for i in range(3):
        log.append(wal.encode([DELETE, "events", b"old%d" % i, None]))
    log.write_header(header(2), [wal.encode([PUT, "meta", b"since", b"1"])])
    log.append(wal.encode([APPEND, "events", b"new", b"x"]))
    assert list(log.records(2)) == [[PUT, "meta", b"since", b"1"],
                                    [APPEND, "events", b"new", b"x"]]
    assert len(list(log.records(1))) == 3  # its region is left alone until generation 3
    log.write_header(header(3))
    assert list(log.records(3)) == []
    log.append(wal.encode([DELETE, "events", b"3", None]))
    assert list(log.records(3)) == [[DELETE, "events", b"3", None]]
    assert list(log.records(1)) == []  # generation 3 is in its place


def test_a_record_that_does_not_fit_is_refused_and_the_file_grows_only_as_needed(
        tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path / "wal", wal.MIN_SIZE)
    log.write_header(header(1))
    assert not log.append(wal.encode([PUT, "objects", b"big", b"x" * wal.CHUNK]))
    assert log.used == 0
    assert not log.write_header(header(2), [wal.encode([PUT, "objects", b"k", b"x"])] * (
        wal.CHUNK // 20))
    big = WriteAheadLog(tmp_path / "wal2", 64 << 20)
    assert os.stat(tmp_path / "wal2").st_blocks * 512 == wal.RECORDS_AT
    big.write_header(header(1))
    for _ in range(3):
        assert big.append(wal.encode([PUT, "objects", b"k", b"x" * (600 << 10)]))
    # 1.8 MiB of records in generation 1's region: two chunks allocated, not 64 MiB
    assert os.stat(tmp_path / "wal2").st_blocks * 512 < wal.RECORDS_AT + 2 * wal.CHUNK + 65536


def test_a_recording_transaction_notes_what_took_effect_and_a_nested_one_only_if_kept(
        tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "db"), max_dbs=2, sync=False)
    a, b = env.open_db(b"a"), env.open_db(b"b")
    names = {a: "a", b: "b"}
    with env.begin(write=True) as txn:
        txn.put(b"gone", b"1", db=b)
        txn.put(b"gone2", b"1", db=b)
    ops: list[object] = []
    rec = Recording(env, env.begin(write=True), names, ops)
    rec.put(b"k", b"v", db=a)
    assert not rec.put(b"k", b"w", db=a, overwrite=False)  # refused: nothing noted
    rec.put(b"z1", b"e", db=b, append=True)
    assert not rec.delete(b"missing", db=a)
    cursor = rec.cursor(db=b)
    assert cursor.first()
    cursor.delete()  # as the request window prunes
    kept = rec.child()
    kept.put(b"kept", b"1", db=a)
    kept.commit_into(rec)
    dropped = rec.child()
    dropped.put(b"dropped", b"1", db=a)
    dropped.abort()
    rec.commit()
    assert ops == [PUT, "a", b"k", b"v", APPEND, "b", b"z1", b"e", DELETE, "b", b"gone",
                   None, PUT, "a", b"kept", b"1"]
    other = lmdb.open(str(tmp_path / "redo"), max_dbs=2)
    dbs = {"a": other.open_db(b"a"), "b": other.open_db(b"b")}
    with other.begin(write=True) as txn:
        txn.put(b"gone", b"1", db=dbs["b"])
        txn.put(b"gone2", b"1", db=dbs["b"])
        wal.apply(txn, dbs, ops)
    with env.begin() as t1, other.begin() as t2:
        for db, name in names.items():
            assert list(t1.cursor(db=db)) == list(t2.cursor(db=dbs[name]))


def test_a_dry_run_recording_notes_nothing(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "db"), max_dbs=1)
    a = env.open_db(b"a")
    rec = Recording(env, env.begin(write=True), {a: "a"}, None)
    rec.put(b"k", b"v", db=a)
    child = rec.child()
    child.delete(b"k", db=a)
    child.commit_into(rec)
    assert rec.ops is None
    rec.abort()


def test_a_header_whose_records_did_not_all_reach_the_disk_is_not_valid(
        tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path / "wal", 2 << 20)
    log.write_header(header(1))
    log.write_header(header(2), [wal.encode([PUT, "objects", b"k", b"v" * 100])])
    assert log.header() is not None and log.header().generation == 2
    log.close()
    with open(tmp_path / "wal", "r+b") as f:  # generation 2's region is region 0
        f.seek(wal.RECORDS_AT + 50)
        f.write(b"\xff")
    assert WriteAheadLog(tmp_path / "wal", 2 << 20).header() == header(1)


def test_records_left_by_an_attempt_at_a_generation_whose_header_was_torn_are_not_read(
        tmp_path: Path) -> None:
    """A power loss while generation 2 began left its records but not its header; the
    next boot begins generation 2 again: a record of the same length as the first left
    over must not let the others be read after it."""
    log = WriteAheadLog(tmp_path / "wal", 2 << 20)
    log.write_header(header(1))
    log.append(wal.encode([PUT, "objects", b"a", b"1"]))
    stale = [wal.encode([PUT, "objects", b"k%d" % i, b"old"]) for i in range(3)]
    log.write_header(header(2), stale)
    log.close()
    with open(tmp_path / "wal", "r+b") as f:  # generation 2's header (slot 0) is torn
        f.seek(100)
        f.write(b"\xff" * 10)
    log = WriteAheadLog(tmp_path / "wal", 2 << 20)
    assert log.header() == header(1)
    log.write_header(header(2))
    fresh = wal.encode([PUT, "objects", b"k9", b"new"])
    assert len(fresh) == len(stale[0])
    log.append(fresh)
    assert list(log.records(2)) == [[PUT, "objects", b"k9", b"new"]]


def test_the_records_are_found_where_they_were_written_when_the_log_size_changed(
        tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path / "wal", 4 << 20)
    log.write_header(header(1))  # generation 1: the second region
    log.append(wal.encode([PUT, "objects", b"k", b"v"]))
    log.close()
    log = WriteAheadLog(tmp_path / "wal", 8 << 20)  # registry.wal_size raised since
    assert list(log.records(1)) == [[PUT, "objects", b"k", b"v"]]


def test_a_recording_cursor_refuses_a_write_the_log_would_not_see(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "db"), max_dbs=1)
    a = env.open_db(b"a")
    rec = Recording(env, env.begin(write=True), {a: "a"}, [])
    cursor = rec.cursor(db=a)
    for write in (lambda: cursor.put(b"k", b"v"), lambda: cursor.replace(b"k", b"v"),
                  lambda: cursor.pop(b"k"), lambda: cursor.putmulti([(b"k", b"v")])):
        with pytest.raises(NotImplementedError):
            write()
    rec.abort()


def test_a_record_the_disk_wrote_only_in_part_is_an_error_not_a_record_to_acknowledge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = WriteAheadLog(tmp_path / "wal", 2 << 20)
    log.write_header(header(1))
    real = os.pwrite
    monkeypatch.setattr(wal.os, "pwrite", lambda fd, data, offset: real(fd, data[:10], offset))
    with pytest.raises(OSError, match="short write"):
        log.write(wal.encode([PUT, "objects", b"k", b"v" * 1000]))
    log.close()
