"""The event log: append-only, hash-chained, optimistic concurrency, idempotent, crash-safe."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from tape.events.schema import OperatorNote, Signal
from tape.store.log import ConcurrencyConflict, EventLog, IdempotencyError, NewEvent, chain_hash
from tests.conftest import TapeRunner


def note(i: int, text: str = "n") -> OperatorNote:
    return OperatorNote(ts=1_700_000_000_000_000_000 + i, text=f"{text}{i}")


def fill_log(path: Path, n: int = 10, stream: str = "s") -> None:
    with EventLog.create(path) as log:
        log.append(stream, [note(i) for i in range(n)], expected_version=0)


# --------------------------------------------------------------------------- immutability


def test_update_through_a_raw_sqlite_connection_is_rejected(log_path: Path) -> None:
    fill_log(log_path)
    raw = sqlite3.connect(log_path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("UPDATE events SET body = x'00' WHERE seq = 3")
    raw.close()


def test_delete_through_a_raw_sqlite_connection_is_rejected(log_path: Path) -> None:
    fill_log(log_path)
    raw = sqlite3.connect(log_path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM events WHERE seq = 3")
    raw.close()


def _tamper(path: Path, sql: str) -> None:
    """Do what an attacker with the file would do: drop the triggers, then change rows."""
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER events_no_update")
    raw.execute("DROP TRIGGER events_no_delete")
    raw.execute(sql)
    raw.commit()
    raw.close()


def test_verify_passes_on_an_intact_log_and_prints_count_and_head(log_path: Path, tape: TapeRunner) -> None:
    fill_log(log_path, n=25)
    result = tape("verify")
    assert result.returncode == 0, result.stderr
    with EventLog.open(log_path) as log:
        _, head = log.head()
    assert "25 events" in result.stdout
    assert head in result.stdout


def test_verify_names_the_seq_whose_body_was_edited(log_path: Path, tape: TapeRunner) -> None:
    fill_log(log_path, n=20)
    _tamper(log_path, "UPDATE events SET body = CAST(body || x'00' AS BLOB) WHERE seq = 7")
    result = tape("verify")
    assert result.returncode == 1
    assert "first bad seq 7" in result.stderr


def test_verify_names_the_gap_left_by_a_deleted_row(log_path: Path, tape: TapeRunner) -> None:
    fill_log(log_path, n=20)
    _tamper(log_path, "DELETE FROM events WHERE seq = 12")
    result = tape("verify")
    assert result.returncode == 1
    assert "first bad seq 12" in result.stderr


def test_verify_detects_two_rows_swapped(log_path: Path, tape: TapeRunner) -> None:
    fill_log(log_path, n=20)
    raw = sqlite3.connect(log_path)
    raw.execute("DROP TRIGGER events_no_update")
    body5, body6 = (raw.execute("SELECT body FROM events WHERE seq = ?", (s,)).fetchone()[0] for s in (5, 6))
    raw.execute("UPDATE events SET body = ? WHERE seq = 5", (body6,))
    raw.execute("UPDATE events SET body = ? WHERE seq = 6", (body5,))
    raw.commit()
    raw.close()
    result = tape("verify")
    assert result.returncode == 1
    assert "first bad seq 5" in result.stderr


def test_verify_rejects_a_rechained_log_when_given_the_head_kept_elsewhere(log_path: Path) -> None:
    fill_log(log_path, n=5)
    with EventLog.open(log_path) as log:
        _, kept_head = log.head()
        log.append("s", [note(99)], expected_version=5)
        assert log.verify(expect_head=kept_head).ok is False
        assert log.verify().ok is True


def test_the_hash_chain_follows_the_documented_formula(log_path: Path) -> None:
    fill_log(log_path, n=3)
    raw = sqlite3.connect(log_path)
    rows = raw.execute(
        "SELECT seq, stream, version, event_id, kind, ts, body, hash FROM events ORDER BY seq"
    ).fetchall()
    raw.close()
    prev = bytes(32)
    for seq, stream, version, event_id, kind, ts, body, stored in rows:
        prev = chain_hash(prev, seq, stream, version, kind, ts, body, event_id)
        assert prev == stored


# --------------------------------------------------------------------------- concurrency


def test_a_stale_expected_version_is_a_conflict_not_an_overwrite(log_path: Path) -> None:
    fill_log(log_path, n=3)
    with EventLog.open(log_path) as log:
        with pytest.raises(ConcurrencyConflict, match="version 3, writer expected 2"):
            log.append("s", [note(100)], expected_version=2)
        assert log.count() == 3


def _racing_writer(path: str, worker: int, seconds: float, results: mp.Queue) -> None:  # type: ignore[type-arg]
    """Append (worker, n) events to one shared stream with expected versions, retrying on conflict."""
    log = EventLog.open(path)
    written, conflicts, n = 0, 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        version = log.stream_version("shared")
        try:
            log.append(
                "shared",
                [OperatorNote(ts=n, text=f"{worker}:{n}")],
                expected_version=version,
                event_ids=[f"w{worker}-{n}"],
            )
        except ConcurrencyConflict:
            conflicts += 1
            continue
        written += 1
        n += 1
    log.close()
    results.put((worker, written, conflicts))


def test_four_processes_appending_to_one_stream_lose_nothing_and_stay_gapless(log_path: Path) -> None:
    EventLog.create(log_path).close()
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_racing_writer, args=(str(log_path), w, 3.0, results)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    reports = [results.get(timeout=5) for _ in procs]
    written = {w: k for w, k, _ in reports}
    conflicts = sum(c for _, _, c in reports)

    with EventLog.open(log_path) as log:
        rows = list(log.read(stream="shared"))
        assert log.verify().ok
    assert len(rows) == sum(written.values())
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert [r.version for r in rows] == list(range(1, len(rows) + 1))
    per_worker: dict[int, list[int]] = {}
    for r in rows:
        worker, n = map(int, r.event.text.split(":"))  # type: ignore[attr-defined]
        per_worker.setdefault(worker, []).append(n)
    for worker, seen in per_worker.items():
        assert seen == list(range(written[worker])), f"worker {worker} lost, duplicated or reordered events"
    assert conflicts > 0, "the race was never contended; the test proved nothing"


# --------------------------------------------------------------------------- crashes

CRASH_WRITER = """
import sys
from tape.events.schema import OperatorNote
from tape.store.log import EventLog, NewEvent
log = EventLog.open(sys.argv[1])
size = int(sys.argv[2])
batch = 0
while True:
    items = [NewEvent("crash", OperatorNote(ts=batch * size + i, text=f"{batch}:{i}"), f"b{batch}-{i}")
             for i in range(size)]
    log.append_batch(items)
    batch += 1
"""


def test_a_writer_killed_mid_batch_leaves_only_whole_batches(log_path: Path) -> None:
    size = 5_000
    EventLog.create(log_path).close()
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", CRASH_WRITER, str(log_path), str(size)])
        deadline = time.monotonic() + 60
        with EventLog.open(log_path) as log:
            start = log.count()
            while log.count() < start + 3 * size and time.monotonic() < deadline:
                time.sleep(0.01)
        time.sleep(0.013 * (attempt + 1))  # land somewhere inside a batch
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

        with EventLog.open(log_path) as log:
            report = log.verify()
            assert report.ok, report.reason
            count = log.count()
            assert count % size == 0, f"{count} events: a partial batch survived the crash"
            texts = [e.text for e in log.events(stream="crash")]  # type: ignore[attr-defined]
        batches = {t.split(":")[0] for t in texts}
        for b in batches:
            assert sum(1 for t in texts if t.startswith(f"{b}:")) == size


# --------------------------------------------------------------------------- idempotency


def test_appending_the_same_event_id_twice_stores_it_once_and_reports_a_duplicate(log_path: Path) -> None:
    with EventLog.create(log_path) as log:
        first = log.append("s", [note(1)], event_ids=["order-42"])
        again = log.append("s", [note(1)], event_ids=["order-42"])
        assert first.status == "appended"
        assert again.duplicate
        assert again.first_seq == first.first_seq
        assert log.count() == 1


def test_a_retry_with_a_stale_version_is_a_duplicate_not_a_conflict(log_path: Path) -> None:
    with EventLog.create(log_path) as log:
        log.append("s", [note(1), note(2)], expected_version=0, event_ids=["a", "b"])
        retry = log.append("s", [note(1), note(2)], expected_version=0, event_ids=["a", "b"])
        assert retry.duplicate and log.count() == 2


def test_default_event_ids_make_a_retried_append_idempotent(log_path: Path) -> None:
    with EventLog.create(log_path) as log:
        log.append("s", [note(1)], expected_version=0)
        retry = log.append("s", [note(1)], expected_version=0)
        assert retry.duplicate and log.count() == 1


def test_a_retry_that_is_only_partly_stored_is_refused(log_path: Path) -> None:
    with EventLog.create(log_path) as log:
        log.append("s", [note(1)], event_ids=["a"])
        with pytest.raises(IdempotencyError, match="'b' is new"):
            log.append("s", [note(1), note(2)], event_ids=["a", "b"])
        assert log.count() == 1


# --------------------------------------------------------------------------- reading


def test_batches_keep_the_interleaving_of_streams_and_number_each_stream(log_path: Path) -> None:
    items = [
        NewEvent("run/x/AAPL/sma", Signal(ts=1, symbol="AAPL", strategy="sma", side="buy", price=1.0)),
        NewEvent("run/x/portfolio", note(2)),
        NewEvent("run/x/AAPL/sma", Signal(ts=3, symbol="AAPL", strategy="sma", side="sell", price=1.0)),
    ]
    with EventLog.create(log_path) as log:
        log.append_batch(items)
        rows = list(log.read())
        assert [(r.stream, r.version) for r in rows] == [
            ("run/x/AAPL/sma", 1),
            ("run/x/portfolio", 1),
            ("run/x/AAPL/sma", 2),
        ]
        assert [r.stream for r in log.read(stream_prefix="run/x/AAPL")] == ["run/x/AAPL/sma"] * 2
        assert [r.kind for r in log.read(kinds=["operator_note"])] == ["operator_note"]


def test_reading_streams_rows_instead_of_loading_the_table(log_path: Path) -> None:
    big = "x" * 2_000
    with EventLog.create(log_path) as log:
        for b in range(10):
            log.append_batch([NewEvent("s", OperatorNote(ts=i, text=big), f"{b}-{i}") for i in range(2_000)])
    # 20,000 events of ~2 kB: ~40 MB of bodies. Folding them must not hold more than a sliver of that.
    with EventLog.open(log_path) as log:
        tracemalloc.start()
        count = sum(1 for _ in log.read())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert count == 20_000
    assert peak < 4_000_000, f"reading held {peak:,} bytes at its peak"


def test_batched_appends_are_checkpointed_into_the_database_file_while_the_log_stays_open(
    log_path: Path,
) -> None:
    big = "x" * 2_000
    with EventLog.create(log_path) as log:
        # ~60 MB of WAL: past the checkpoint threshold (~40 MB), so the checkpoint thread copies pages.
        for b in range(15):
            log.append_batch([NewEvent("s", OperatorNote(ts=i, text=big), f"{b}-{i}") for i in range(2_000)])
        deadline = time.monotonic() + 30
        while os.path.getsize(log_path) < 20_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.getsize(log_path) >= 20_000_000, "nothing was checkpointed while the log was open"
        assert log.verify().ok
        assert log.count() == 30_000
