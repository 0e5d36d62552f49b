"""`tape whatif` on recorded sessions: a sim/replay session and an Alpaca-emulator session re-run from
the bars their log recorded, with no market-data store at all."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tape.actors.engine import run_replay_session
from tape.events.backtest import BacktestConfig
from tape.events.schema import Signal
from tape.events.whatif import decisions, run_neutral
from tape.store.backtests import load_config_bars
from tape.store.bar_files import import_bars_file
from tape.store.log import EventLog
from tape.store.runs import run_events
from tape.store.whatif import outcome_json
from tape.what_if import whatif
from tests.conftest import TapeRunner
from tests.test_live import live_run  # noqa: F401 - the emulator session fixture

SAMPLE = Path(__file__).resolve().parent.parent / "store" / "sample"


def _events(log_path: Path, run_id: str) -> list:
    with EventLog.open(log_path, readonly=True) as log:
        return [r.event for r in run_events(log, run_id)]


def _imported_symbol(tmp_path: Path) -> Path:
    """Two years of the sample's AAPL stored as ZZZ: bars only the market-data store holds."""
    data = tmp_path / "tape-data.db"
    sample = pd.read_csv(SAMPLE / "stocks_daily.csv.gz")
    bars = sample[(sample.symbol == "AAPL") & (sample.date >= "2004-01-01") & (sample.date <= "2005-12-31")]
    bars.drop(columns=["symbol", "adj_close"]).to_csv(tmp_path / "zzz.csv", index=False)
    import_bars_file(tmp_path / "zzz.csv", "ZZZ", data_path=data)
    return data


def test_a_replay_session_is_rerun_from_its_log_after_the_data_store_is_deleted(
    ray_session: None, tmp_path: Path, tape: TapeRunner
) -> None:
    data, log_path = _imported_symbol(tmp_path), tmp_path / "tape.db"
    config = BacktestConfig(symbols=["ZZZ"], strategy="sma_cross")
    session = run_replay_session(config, load_config_bars(config, data), log_path=log_path)
    data.unlink()
    result = tape("whatif", session.run_id, "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["inputs"] == "log" and out["first_divergence"] is None and out["trade_changes"] == []
    assert out["trades"]["derived"] == out["trades"]["original"] > 0
    stopped = json.loads(tape("whatif", session.run_id, "--set", "stop_loss=3", "--json").stdout)
    assert stopped["inputs"] == "log" and stopped["trade_changes"]


def test_an_alpaca_session_is_rerun_from_its_log_alone(live_run, tmp_path: Path) -> None:  # noqa: F811
    _market, start, workdir = live_run
    start("2024-07-03 12:30")
    log_path = workdir / "tape.db"
    outcome = whatif("live-test", log=log_path, data_path=tmp_path / "no-such-store.db")
    out = outcome_json(outcome)
    assert out["inputs"] == "log"
    original = _events(log_path, "live-test")
    live_signals = [e for e in decisions(original) if isinstance(e, Signal)]
    model_signals = [e for e in decisions(outcome.derived_events) if isinstance(e, Signal)]
    assert live_signals and [run_neutral(e, "") for e in model_signals] == live_signals
