"""Long and short: a stop-and-reverse run equals a reference written for this test, trade for trade, and
a long-short run with the default rules re-runs identically and reconciles to the cent.

The reference shares no code with ``events/``: it reads the bundled sample CSV itself, computes the
moving averages with pandas and flips the position by hand.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TapeRunner

SAMPLE = Path(__file__).resolve().parent.parent / "store" / "sample" / "stocks_daily.csv.gz"
SYMBOLS = ("AAPL", "MSFT", "GOOG")
QTY = 100.0


def _bars(symbol: str) -> pd.DataFrame:
    with gzip.open(SAMPLE, "rt") as f:
        frame = pd.read_csv(f, dtype={"symbol": str, "date": str})
    bars = frame[frame["symbol"] == symbol].reset_index(drop=True)
    factor = bars["adj_close"] / bars["close"]  # prices adjusted for splits and dividends
    for column in ("open", "high", "low", "close"):
        bars[column] = bars[column] * factor
    return bars


def _reference_trades(symbol: str, fast: int = 10, slow: int = 30) -> list[dict]:
    """Stop-and-reverse on SMA(fast)/SMA(slow) crossings, 100 shares, fills at the next open, the
    position closed at the last close; no costs, no stops."""
    bars = _bars(symbol)
    short_ma = bars["close"].rolling(fast).mean()
    long_ma = bars["close"].rolling(slow).mean()
    valid = long_ma.notna()
    above = (short_ma - long_ma) > 1e-12 * long_ma.abs()
    trades: list[dict] = []
    held, entry_date, entry_price = 0, "", 0.0
    last = len(bars) - 1

    def close(date: str, price: float) -> None:
        pnl = (price - entry_price) * QTY * held
        side = "long" if held > 0 else "short"
        trades.append(dict(symbol=symbol, side=side, entry=entry_date, exit=date, pnl=round(pnl, 2)))

    for i in range(1, len(bars)):
        want = 0
        if valid[i] and valid[i - 1] and above[i] != above[i - 1]:
            want = 1 if above[i] else -1
        if want == 0 or want == held:
            continue
        if i == last:  # no next open: a reversal's exit fills at this close, its entry never
            if held:
                close(bars["date"][i], bars["close"][i])
                held = 0
            continue
        date, price = bars["date"][i + 1], bars["open"][i + 1]
        if held:
            close(date, price)
        held, entry_date, entry_price = want, date, price
    if held:
        close(bars["date"][last], bars["close"][last])
    return trades


def _run(tape: TapeRunner, *options: str) -> dict:
    result = tape(
        "backtest",
        *SYMBOLS,
        "--strategy",
        "sma_cross",
        "--param",
        "short=10",
        "--param",
        "long=30",
        "--direction",
        "both",
        "--shortable",
        ",".join(SYMBOLS),
        *options,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_stop_and_reverse_sma_cross_trades_equal_the_reference(tape: TapeRunner) -> None:
    report = _run(
        tape,
        *("--qty", "100", "--stop-loss", "0", "--take-profit", "0", "--max-daily-loss", "0"),
        *("--slippage-bps", "0", "--commission", "0", "--borrow-fee", "0", "--cash", "1000000"),
    )
    got = sorted(
        (t["symbol"], t["entry_time"], t["exit_time"], t["side"], t["pnl"]) for t in report["trades"]
    )
    want = sorted(
        (t["symbol"], t["entry"], t["exit"], t["side"], t["pnl"])
        for s in SYMBOLS
        for t in _reference_trades(s)
    )
    assert len(got) == len(want)
    for mine, theirs in zip(got, want, strict=True):
        assert mine[:4] == theirs[:4]
        assert mine[4] == pytest.approx(theirs[4], abs=0.011)
    assert {t["side"] for t in report["trades"]} == {"long", "short"}
    assert report["short_trades"] + report["long_trades"] == report["total_trades"]


def test_long_short_run_with_default_rules_reruns_and_reconciles_to_the_cent(tape: TapeRunner) -> None:
    report = _run(tape)
    short = [t for t in report["trades"] if t["side"] == "short"]
    assert short and any(t["borrow_fee"] > 0 for t in short)
    assert report["total_borrow_fees"] > 0
    pnl_cents = sum(round(t["pnl"] * 100) for t in report["trades"])
    assert pnl_cents == round((report["final_equity"] - report["start_equity"]) * 100)
    assert report["total_pnl"] == pytest.approx(pnl_cents / 100, abs=1e-9)
    rerun = tape("replay", report["run_id"], "--rerun")
    assert rerun.returncode == 0, rerun.stderr
    assert "identical" in rerun.stdout


def test_explain_follows_a_short_from_its_sell_signal_with_margin_and_borrow(tape: TapeRunner) -> None:
    report = _run(tape, "--start", "2005-01-01", "--end", "2007-12-31")
    number = next(t["n"] for t in report["trades"] if t["side"] == "short" and t["borrow_fee"] > 0)
    result = tape("explain", report["run_id"], "--trade", str(number), "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "signal" and events[0]["side"] == "sell"
    accepted = events[kinds.index("risk_accepted")]
    assert {"buying_power", "initial_margin_pct", "margin_required"} <= set(accepted["checks"])
    assert "borrow_fee" in kinds
    assert kinds[-1] == "position_closed" and events[-1]["qty"] < 0
