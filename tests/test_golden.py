"""Pinned behaviour that every refactor keeps: the demo run, and a log written by an earlier release.

- ``golden_demo.json.gz``: the `make demo` backtest (AAPL, SMA 5/20, default risk and costs): its
  ``--json`` summary and every event of the run, in order. Run ids and the code version are masked
  (both change with any edit to ``events/``); everything else must be equal to the byte.
- ``log_2026-12-07.db.gz``: a log written by the release of 2026-12-07 (one backtest and one
  sim/replay session). Later code must verify it, fold it to the same reports and re-run it.

Regenerate the demo golden only for a behaviour change you mean, and say why in the commit:
``TAPE_REGENERATE_GOLDEN=1 pytest tests/test_golden.py``.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import msgspec
import pytest

from tape.events import schema as s
from tape.store.log import EventLog
from tape.store.runs import run_events
from tests.conftest import TapeRunner

DATA = Path(__file__).parent / "data"
GOLDEN_DEMO = DATA / "golden_demo.json.gz"
OLD_LOG = DATA / "log_2026-12-07.db.gz"
OLD_LOG_HEAD = "c2166ebb68cfdb0be98ed3fa55cefeb75a2a2f0ce9296279f2a13dbd83051541"
OLD_BACKTEST, OLD_SESSION = "8bd5ffeef2525bb8", "d53c28339d420364"


def _masked(event: s.Event, run_id: str) -> str:
    if isinstance(event, s.RunStarted):
        event = msgspec.structs.replace(event, code_version="CODE")
    return s.to_json(event).decode().replace(run_id, "RUN")


def _demo_run(tape: TapeRunner, log: Path) -> tuple[dict, list[str]]:
    result = tape(
        "backtest", "AAPL", "--strategy", "sma_cross", "--param", "short=5", "--param", "long=20", "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    run_id = summary.pop("run_id")
    with EventLog.open(log, readonly=True) as opened:
        events = [_masked(r.event, run_id) for r in run_events(opened, run_id)]
    return json.loads(json.dumps(summary).replace(run_id, "RUN")), events


def test_demo_run_summary_and_events_equal_the_golden(tape: TapeRunner, tmp_path: Path) -> None:
    summary, events = _demo_run(tape, tmp_path / "tape.db")
    if os.environ.get("TAPE_REGENERATE_GOLDEN"):
        GOLDEN_DEMO.write_bytes(gzip.compress(json.dumps({"summary": summary, "events": events}).encode(), 9))
    golden = json.loads(gzip.decompress(GOLDEN_DEMO.read_bytes()))
    assert summary == golden["summary"]
    assert len(events) == len(golden["events"])
    for position, (got, want) in enumerate(zip(events, golden["events"], strict=True)):
        assert got == want, f"event {position} of the demo run differs"


@pytest.fixture
def old_log(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    path.write_bytes(gzip.decompress(OLD_LOG.read_bytes()))
    return path


def test_old_log_verifies_with_its_recorded_head(tape: TapeRunner, old_log: Path) -> None:
    result = tape("--log", str(old_log), "verify", "--expect-head", OLD_LOG_HEAD)
    assert result.returncode == 0, result.stderr
    assert "chain intact" in result.stdout


@pytest.mark.parametrize("run_id, trades, pnl", [(OLD_BACKTEST, 19, 120.32), (OLD_SESSION, 21, -47.00)])
def test_old_log_folds_to_its_recorded_result(
    tape: TapeRunner, old_log: Path, run_id: str, trades: int, pnl: float
) -> None:
    result = tape("--log", str(old_log), "replay", run_id, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["total_trades"], report["total_pnl"]) == (trades, pnl)


def test_old_log_backtest_reruns_identically(tape: TapeRunner, old_log: Path) -> None:
    result = tape("--log", str(old_log), "replay", OLD_BACKTEST, "--rerun")
    assert result.returncode == 0, result.stderr
    assert "identical" in result.stdout


def test_old_log_still_decodes_event_by_event(old_log: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(old_log, copy)
    with EventLog.open(copy, readonly=True) as opened:
        kinds = {s.kind_of(r.event) for r in opened.read()}
    assert {"run_started", "signal", "fill", "position_closed", "run_ended"} <= kinds
