"""`tape reconcile`: a session on the Alpaca emulator, with faults of known size injected, against its
re-run on the model: each cause gets exactly what was injected, and the causes sum to the gap."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tape.actors.alpaca.broker import AlpacaBroker
from tape.actors.alpaca.feed import AlpacaBarFeed
from tape.actors.clock import SimulatedClock
from tape.actors.live_session import LiveSession, run_schedule
from tape.events.backtest import BacktestConfig
from tape.events.costs import CostModel
from tape.store.credentials import AlpacaCredentials
from tape.store.reconcile import attribution_json, reconcile
from tests.alpaca_emulator import AlpacaEmulator
from tests.conftest import TapeRunner, assert_clean_failure
from tests.test_live import SYMBOLS, Market, _ns

FREE = CostModel(slippage_bps=0.0, commission=0.0)  # the model then prices a fill exactly as the emulator


class CentMarket(Market):
    """The seeded minutes in whole cents, so the emulator's prices are the bars' exactly."""

    def __init__(self, emulator: AlpacaEmulator) -> None:
        super().__init__(emulator)
        for symbol in SYMBOLS:
            close = np.round(self.close[symbol], 2)
            self.close[symbol] = close
            rows = []
            for k, (t, *_rest, volume) in enumerate(self.rows[symbol]):
                o, c = (close[k - 1] if k else close[0]), close[k]
                rows.append((t, o, max(o, c) + 0.01, min(o, c) - 0.01, c, volume))
            emulator.add_bars(symbol, rows)
            self.rows[symbol] = rows


SessionRun = Callable[[str, Callable[[CentMarket], None] | None], Path]


@pytest.fixture
def session_run(alpaca_emulator: AlpacaEmulator, tmp_path: Path) -> SessionRun:
    """Run a cost-free live session over the emulator's seeded minutes; returns its log."""

    def run(until: str, faults: Callable[[CentMarket], None] | None = None) -> Path:
        market = CentMarket(alpaca_emulator)
        if faults is not None:
            faults(market)
        credentials = AlpacaCredentials(
            api_key=alpaca_emulator.key_id,
            secret_key=alpaca_emulator.secret,
            base_url=alpaca_emulator.trading_url,
            data_url=alpaca_emulator.data_url,
        )
        config = BacktestConfig(symbols=SYMBOLS, timeframe="5Min", cash=100_000.0, cost=FREE)
        clock = SimulatedClock(_ns("2024-07-03 09:00"), on_advance=market.advance)
        market.advance(clock.now_ns())
        session = LiveSession(
            config,
            run_id="live-test",
            broker=AlpacaBroker(credentials, retry_wait_seconds=0),
            feed=AlpacaBarFeed(credentials, "5Min", retry_wait_seconds=0),
            log_path=tmp_path / "tape.db",
        )
        session.start(clock.now_ns(), days_back=3)
        run_schedule(session, clock, 300, until_ns=_ns(until))
        session.stop(clock.now_ns())
        return tmp_path / "tape.db"

    return run


def _reconciled(log_path: Path) -> dict:
    attribution, outcome = reconcile(log_path, "live-test")
    return attribution_json(attribution, outcome)


def test_a_session_without_faults_matches_the_model_to_the_cent(
    session_run: SessionRun, tape: TapeRunner
) -> None:
    session_run("2024-07-05 12:00", None)
    result = tape("reconcile", "live-test", "--json")  # the command, on the session's log
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["trades"]) >= 4
    assert out["gap"] == 0 and all(v == 0 for v in out["causes"].values())
    table = tape("reconcile", "live-test")
    assert "total = gap" in table.stdout and "late or missed bars" in table.stdout


def test_the_sessions_report_shows_its_reconcile_table_and_writes_nothing(
    session_run: SessionRun, tape: TapeRunner
) -> None:
    log_path = session_run("2024-07-05 12:00", None)
    before = tape("verify").stdout
    report = tape("report", "live-test", "--json")
    assert report.returncode == 0, report.stderr
    assert tape("verify").stdout == before  # the report computed the model run, it did not log it
    section = json.loads(report.stdout)["live_vs_model"]
    assert section == _reconciled(log_path)  # the table `tape reconcile` prints (which logs the model run)
    text = tape("report", "live-test").stdout
    assert "Live vs model" in text and "total = gap" in text


def test_reconcile_of_a_backtest_points_to_whatif(tape: TapeRunner) -> None:
    run_id = json.loads(
        tape("backtest", "AAPL", "--start", "2005-01-01", "--end", "2005-06-30", "--json").stdout
    )
    result = tape("reconcile", run_id["run_id"])
    assert result.returncode == 2
    assert_clean_failure(result, "reconcile explains paper or live sessions", "tape whatif")


def _inject(market: CentMarket) -> None:
    """One fault of known size per decision (each cycle HH:MM places what bar HH:MM-5 decided)."""
    emulator = market.emulator
    market.faults[_ns("2024-07-03 11:01")] = lambda: emulator.slip_next_fills(1, 0.05)  # MSFT entry
    market.faults[_ns("2024-07-03 11:11")] = lambda: emulator.fill_next_late(1)  # AAPL entry
    market.faults[_ns("2024-07-05 10:06")] = lambda: emulator.expire_next_market_part(0.5, "buy")  # GOOG
    market.faults[_ns("2024-07-05 11:51")] = lambda: emulator.reject_next_orders(1)  # AAPL entry
    # The bar request of one cycle fails: MSFT's 10:50 bar (a buy) arrives a cycle late, with 10:55's.
    market.faults[_ns("2024-07-08 10:51")] = lambda: emulator.fail_next(4, 500, "/v2/stocks")


def test_each_injected_fault_is_attributed_exactly_and_the_causes_sum_to_the_gap(
    session_run: SessionRun,
) -> None:
    markets: list[CentMarket] = []
    out = _reconciled(session_run("2024-07-08 12:00", lambda m: (markets.append(m), _inject(m))))
    market = markets[0]

    def price(symbol: str, minute: str) -> float:  # the close of a minute: the next minute's open
        return float(market.close[symbol][int(np.searchsorted(market.ts, _ns(minute)))])

    causes, qty = out["causes"], 100  # every entry is capped at 100 shares
    assert causes["entry_slippage"] == round(-qty * 0.05, 2)
    assert causes["latency"] == round(
        qty * (price("AAPL", "2024-07-03 11:14") - price("AAPL", "2024-07-03 11:19")), 2
    )
    goog = price("GOOG", "2024-07-05 13:29") - price("GOOG", "2024-07-05 10:09")
    assert causes["partial_fills"] == round((qty // 2 - qty) * goog, 2)
    aapl = price("AAPL", "2024-07-05 13:19") - price("AAPL", "2024-07-05 11:54")
    assert causes["rejected_canceled_expired"] == round(-qty * aapl, 2)
    msft = price("MSFT", "2024-07-08 11:59") - price("MSFT", "2024-07-08 10:54")
    assert causes["late_or_missed_bars"] == round(-qty * msft, 2)
    assert causes["exit_slippage"] == causes["fees"] == causes["unexplained"] == 0
    assert round(sum(causes.values()), 2) == out["gap"] == round(out["live_pnl"] - out["model_pnl"], 2)
    assert out["gap"] != 0
