"""Several processes on one log: writers wait their turn, readers never wait on a writer, and a writer
that waited too long says who holds the log."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tape.store.log import EventLog
from tests.conftest import TapeRunner, assert_clean_failure

NOTE_WRITER = """
import sys, uuid
from tape.events.schema import OperatorNote
from tape.store.log import EventLog
path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):  # what `tape log note` does, one process open per note
    with EventLog.create(path) as log:
        note = OperatorNote(ts=i, text=f"{who} {i}")
        log.append("ops/notes", [note], event_ids=[uuid.uuid4().hex], durable=True)
"""

SESSION_WRITER = """
import sys, time
from tape.events.schema import OperatorNote
from tape.store.log import EventLog
path, seconds = sys.argv[1], float(sys.argv[2])
with EventLog.create(path, durable=True) as log:
    print("writing", flush=True)
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:  # a session's rhythm: one small durable transaction after another
        log.append("run/x/portfolio", [OperatorNote(ts=i, text="decision")] * 5)
        i += 1
"""

LOCK_HOLDER = """
import sys, time, apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_four_writers_of_fifty_appends_each_all_land_in_one_contiguous_chain(log_path: Path) -> None:
    EventLog.create(log_path).close()
    writers = [_python(NOTE_WRITER, str(log_path), f"w{k}", "50") for k in range(4)]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
    with EventLog.open(log_path, readonly=True) as log:
        seqs = [seq for (seq,) in log.query("SELECT seq FROM events ORDER BY seq")]
        assert seqs == list(range(1, 201))
        assert log.verify().ok


CREATOR = """
import sys
from tape.store.log import EventLog
with EventLog.create(sys.argv[1]) as log:
    print(log.chain_format())
"""


def test_six_processes_creating_one_fresh_log_at_once_all_open_it(tmp_path: Path) -> None:
    for trial in range(3):  # the race is in the first milliseconds: try it a few times
        path = tmp_path / f"fresh{trial}.db"
        creators = [_python(CREATOR, str(path)) for _ in range(6)]
        results = [creator.communicate(timeout=120) for creator in creators]
        assert [c.returncode for c in creators] == [0] * 6, [err for _, err in results]
        with EventLog.open(path, readonly=True) as log:
            assert log.verify().ok


def test_concurrent_log_notes_from_the_command_line_all_succeed(tape: TapeRunner, log_path: Path) -> None:
    def notes(writer: int) -> list[int]:
        return [tape("log", "note", f"writer {writer} note {i}").returncode for i in range(2)]

    with ThreadPoolExecutor(4) as pool:
        codes = [code for batch in pool.map(notes, range(4)) for code in batch]
    assert codes == [0] * 8
    verified = tape("verify")
    assert verified.returncode == 0 and "8 events, chain intact" in verified.stdout


VERIFIER = """
import sys
from tape.store.log import EventLog
with EventLog.open(sys.argv[1], readonly=True) as log:  # what `tape verify` opens
    report = log.verify()
print("ok" if report.ok else f"BROKEN {report.reason}")
"""


def test_forty_verifies_while_a_session_writes_all_succeed(tape: TapeRunner, log_path: Path) -> None:
    EventLog.create(log_path).close()
    writer = _python(SESSION_WRITER, str(log_path), "600")
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        with ThreadPoolExecutor(4) as pool:
            # 36 verifier processes (the command's open and verify without the CLI's start-up) and
            # 4 `tape verify` commands, all while the session appends.
            results = [(r.returncode, r.stdout + r.stderr) for r in pool.map(_verifier, [log_path] * 36)]
            results += [
                (r.returncode, r.stdout + r.stderr) for r in pool.map(lambda _: tape("verify"), range(4))
            ]
        assert writer.poll() is None, "the session stopped writing before the verifies ended"
    finally:
        writer.kill()
        writer.communicate()
    assert len(results) == 40
    failures = [out for code, out in results if code != 0 or not ("ok" in out or "chain intact" in out)]
    assert failures == []


def _verifier(log_path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", VERIFIER, str(log_path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_a_writer_kept_waiting_past_its_bound_names_who_holds_the_log(
    tape: TapeRunner, log_path: Path
) -> None:
    EventLog.create(log_path).close()
    holder = _python(LOCK_HOLDER, str(log_path), "120")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        result = tape("log", "note", "waiting", env={"TAPE_BUSY_TIMEOUT": "1"})
        waited = time.monotonic() - started
        reader = tape("runs")  # a reader is not kept waiting by the writer
    finally:
        holder.kill()
        holder.communicate()
    assert result.returncode == 1
    assert_clean_failure(
        result, f"error: log is busy (held by pid {holder.pid} (", f"could not write {log_path}"
    )
    assert waited < 100
    assert reader.returncode == 0, reader.stderr


def test_four_backtests_of_one_symbol_at_once_all_succeed_and_write_their_files(
    tape: TapeRunner, tmp_path: Path
) -> None:
    def backtest(short: int) -> subprocess.CompletedProcess[str]:
        return tape("backtest", "AAPL", "--strategy", "sma_cross", "--param", f"short={short}", "--json")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(backtest, (3, 4, 5, 6)))
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    charts = sorted((tmp_path / "charts").glob("equity_curve_AAPL_*.png"))  # one a run: named by run id
    assert len(charts) == 4 and all(chart.stat().st_size > 0 for chart in charts)
    assert not [p.name for p in tmp_path.rglob("*.tmp*")]  # no temporary file left behind
    runs = tape("runs", "--json")
    assert len(runs.stdout.strip().splitlines()) == 4
