"""`tape verify` catches every damage it can see, in one line with exit 1; writers refuse a damaged file.

Each case damages a real log written by `tape backtest` the way an operator or a disk could: garbage
over a page, an edited event id, rows cut off the end (with and without the head kept elsewhere).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TapeRunner, assert_clean_failure

BACKTEST = ["backtest", "AAPL", "--strategy", "sma_cross", "--no-files", "--json"]


@pytest.fixture(scope="module")
def one_backtest(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str, int, str]:
    """A log holding one backtest, written once: (its bytes, run id, head seq, head hash)."""
    where = tmp_path_factory.mktemp("one_backtest")
    env = {**os.environ, "TAPE_LOG": str(where / "tape.db"), "TAPE_DATA": str(where / "data.db")}

    def tape(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "tape.cli.app", *args]
        return subprocess.run(command, cwd=where, env=env, capture_output=True, text=True, timeout=300)

    result = tape(*BACKTEST)
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    verified = tape("verify")
    assert verified.returncode == 0, verified.stderr
    seq, head = verified.stdout.split("head ")[1].strip().split(":")
    assert not (where / "tape.db-wal").exists() or not (where / "tape.db-wal").stat().st_size
    return (where / "tape.db").read_bytes(), run_id, int(seq), head


@pytest.fixture
def logged(one_backtest: tuple[bytes, str, int, str], tmp_path: Path) -> tuple[Path, str, int, str]:
    """A fresh copy of that log where the `tape` fixture looks: (path, run id, head seq, head hash)."""
    data, run_id, seq, head = one_backtest
    log = tmp_path / "tape.db"
    log.write_bytes(data)
    return log, run_id, seq, head


def _raw(log: Path) -> sqlite3.Connection:
    raw = sqlite3.connect(log)
    raw.execute("DROP TRIGGER events_no_update")
    raw.execute("DROP TRIGGER events_no_delete")
    return raw


def _digest(log: Path) -> str:
    return hashlib.sha256(log.read_bytes()).hexdigest()


def test_garbage_over_an_index_page_is_reported_as_damage_and_no_writer_appends(
    tape: TapeRunner, logged: tuple[Path, str, int, str]
) -> None:
    log = logged[0]
    raw = sqlite3.connect(log)
    (page_size,) = raw.execute("PRAGMA page_size").fetchone()
    (root,) = raw.execute(
        "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND sql IS NULL AND tbl_name = 'events' "
        "ORDER BY rootpage DESC LIMIT 1"
    ).fetchone()
    raw.close()
    with log.open("r+b") as f:  # 4 KiB of garbage where the (stream, version) index starts
        f.seek((root - 1) * page_size)
        f.write(random.Random(3).randbytes(4096))
    before = _digest(log)

    verified = tape("verify")
    assert verified.returncode == 1
    assert_clean_failure(verified, f"DAMAGED {log}: SQLite's integrity check fails: ")

    note = tape("log", "note", "after the damage")
    assert note.returncode == 1
    assert_clean_failure(note, f"error: {log} is damaged (SQLite integrity check: ", "nothing was written")
    assert _digest(log) == before

    runs = tape("runs")
    assert runs.returncode == 1
    assert_clean_failure(runs, "is damaged")
    assert "internal error" not in runs.stderr


def test_an_edited_event_id_breaks_the_chain_at_its_seq(
    tape: TapeRunner, logged: tuple[Path, str, int, str]
) -> None:
    log = logged[0]
    raw = _raw(log)
    raw.execute("UPDATE events SET event_id = 'forged-id' WHERE seq = 5")
    raw.commit()
    raw.close()
    verified = tape("verify")
    assert verified.returncode == 1
    assert verified.stderr.strip() == (
        f"BROKEN {log}: first bad seq 5: "
        "hash mismatch: the row (or its event id) was altered, removed or reordered"
    )


def test_rows_cut_off_the_end_of_a_backtest_are_reported_without_the_kept_head(
    tape: TapeRunner, logged: tuple[Path, str, int, str]
) -> None:
    log, run_id, head_seq, _ = logged
    raw = _raw(log)
    raw.execute("DELETE FROM events WHERE seq > ?", (head_seq - 3,))
    raw.commit()
    raw.close()
    verified = tape("verify")
    assert verified.returncode == 1
    assert verified.stderr.strip() == (
        f"BROKEN {log}: first bad seq {head_seq - 2}: backtest {run_id} stops short at seq {head_seq - 3} "
        "without its RunEnded (a backtest is written whole: the events after it are missing)"
    )


def test_rows_cut_off_the_end_are_counted_against_the_kept_head(
    tape: TapeRunner, logged: tuple[Path, str, int, str]
) -> None:
    log, _, head_seq, head = logged
    raw = _raw(log)
    raw.execute("DELETE FROM events WHERE seq > ?", (head_seq - 3,))
    raw.commit()
    raw.close()
    verified = tape("verify", "--expect-head", f"{head_seq}:{head}")
    assert verified.returncode == 1
    assert verified.stderr.strip() == (
        f"BROKEN {log}: first bad seq {head_seq - 2}: "
        f"3 events after seq {head_seq - 3} are missing (the head kept is at seq {head_seq})"
    )


def test_the_kept_head_verifies_an_intact_log(tape: TapeRunner, logged: tuple[Path, str, int, str]) -> None:
    _, _, head_seq, head = logged
    verified = tape("verify", "--expect-head", f"{head_seq}:{head}")
    assert verified.returncode == 0, verified.stderr
    assert f"head {head_seq}:{head}" in verified.stdout
