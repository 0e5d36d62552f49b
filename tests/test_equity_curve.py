"""The drawn equity curve marks open trades exactly as marking each trade bar by bar would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tape.events.backtest import BacktestConfig
from tape.events.report import RunReport
from tape.store.backtest_files import equity_by_bar
from tape.store.backtests import backtest


def _marked_trade_by_trade(report: RunReport, series: list, ts: np.ndarray) -> np.ndarray:
    """The specification: realised P&L by exit, plus each open trade at its symbol's last close."""
    cash = float(report.config.get("cash", 0.0))
    closes = {s.symbol: s for s in series}
    trades = sorted(report.trades, key=lambda t: t.exit_ts)
    exit_ts = np.array([t.exit_ts for t in trades], dtype=np.int64)
    realized = np.r_[0.0, np.cumsum([t.pnl for t in trades])]
    equity = cash + realized[np.searchsorted(exit_ts, ts, side="right")]
    for trade in trades:
        bars = closes[trade.symbol]
        lo, hi = np.searchsorted(ts, trade.entry_ts), np.searchsorted(ts, trade.exit_ts)
        at = np.clip(np.searchsorted(bars.ts, ts[lo:hi], side="right") - 1, 0, len(bars) - 1)
        equity[lo:hi] += trade.qty * (bars.close[at] - trade.entry_price)
    return equity


@pytest.mark.parametrize("symbols", [["AAPL"], ["AAPL", "MSFT", "IBM"]], ids=["one symbol", "overlapping"])
def test_equity_by_bar_equals_marking_each_trade(tmp_path: Path, symbols: list[str]) -> None:
    outcome = backtest(
        BacktestConfig(symbols=symbols, strategy="sma_cross", params={"short": 5, "long": 20}),
        log_path=tmp_path / "tape.db",
        data_path=tmp_path / "tape-data.db",
    )
    series = list(outcome.series)
    ts = np.unique(np.concatenate([s.ts for s in series]))
    assert len(outcome.report.trades) > 10
    got = equity_by_bar(outcome.report, series, ts)
    assert got.tobytes() == _marked_trade_by_trade(outcome.report, series, ts).tobytes()
