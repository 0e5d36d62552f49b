"""Log commands from a user's shell: verify, log show, log note, runs, and their errors."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from tests.conftest import TapeRunner, assert_clean_failure


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _siblings(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()}


def test_note_creates_the_log_and_show_lists_it(tape: TapeRunner) -> None:
    assert tape("log", "note", "paused AAPL: earnings tomorrow", "--author", "ana").returncode == 0
    shown = tape("log", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    [line] = shown.stdout.strip().splitlines()
    row = json.loads(line)
    assert row["kind"] == "operator_note" and row["stream"] == "ops/notes"
    assert row["event"]["text"] == "paused AAPL: earnings tomorrow" and row["event"]["author"] == "ana"


def test_show_filters_by_kind_and_limits_to_the_newest(tape: TapeRunner) -> None:
    for i in range(5):
        tape("log", "note", f"note {i}")
    shown = tape("log", "show", "--kind", "operator_note", "--limit", "2", "--json")
    texts = [json.loads(line)["event"]["text"] for line in shown.stdout.strip().splitlines()]
    assert texts == ["note 3", "note 4"]


def test_runs_on_a_log_without_runs_says_so(tape: TapeRunner) -> None:
    tape("log", "note", "hello")
    result = tape("runs")
    assert result.returncode == 0 and "no runs" in result.stderr


def test_a_missing_log_is_one_clear_error_and_creates_nothing(tape: TapeRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    for args in (["verify"], ["log", "show"], ["runs"]):
        assert_clean_failure(tape("--log", str(missing), *args), "no tape log", str(missing))
    assert not missing.exists()


def test_a_file_that_is_not_sqlite_is_refused_untouched(tape: TapeRunner, tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database\n" * 100)
    before, files = _digest(junk), _siblings(junk)
    assert_clean_failure(tape("--log", str(junk), "verify"), "not a tape log")
    assert_clean_failure(tape("--log", str(junk), "log", "note", "x"), "not a tape log")
    assert _digest(junk) == before and _siblings(junk) == files


def test_a_sqlite_file_of_another_app_is_refused_untouched(tape: TapeRunner, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers(name) VALUES ('x')")
    conn.commit()
    conn.close()
    before, files = _digest(other), _siblings(other)
    assert_clean_failure(tape("--log", str(other), "verify"), "another application")
    assert_clean_failure(tape("--log", str(other), "log", "note", "x"), "another application")
    assert _digest(other) == before and _siblings(other) == files


def test_an_unknown_kind_is_one_clear_error(tape: TapeRunner) -> None:
    tape("log", "note", "hello")
    assert_clean_failure(tape("log", "show", "--kind", "fills"), "unknown event kind 'fills'", "fill")


def test_an_unknown_option_is_a_usage_error_without_traceback(tape: TapeRunner) -> None:
    result = tape("verify", "--frobnicate")
    assert result.returncode == 2 and "Traceback" not in result.stderr
