"""Portfolio strategies: momentum on sp500_20 equals a short pandas reference written here, holdings
after every rebalance and final equity to the cent (zero costs, whole shares, cash in cents)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

import tape
from tape.events.schema import Fill, Rebalanced
from tape.store.log import EventLog
from tape.store.runs import run_events

SP500_20 = Path(__file__).resolve().parent.parent / "store" / "sample" / "sp500_20_daily.csv.gz"
START, END = "2005-01-01", "2010-12-31"


def _cents(dollars: float) -> int:
    return int(dollars * 100.0 + (0.5 if dollars >= 0 else -0.5))


def reference_momentum(lookback: int = 252, skip: int = 21, top: int = 5, cash: float = 100_000.0):
    """Momentum in pandas: rank by close[t-skip]/close[t-lookback]-1 on the first trading day of each
    month, hold the top `top` at 1/top of equity in whole shares, trade at the next open (the
    dataset's open is its close), sells first, buys cut to the cash; sell all at the last close."""
    closes = pd.read_csv(SP500_20, index_col="Date", parse_dates=True).sort_index(axis=1)
    closes = closes.loc[START:END]
    score = closes.shift(skip) / closes.shift(lookback) - 1.0
    rank = score.rank(axis=1, ascending=False, method="first")
    months = closes.index.to_period("M")
    first_day = months != months.to_series().shift().to_numpy()
    cash_cents = _cents(cash)
    held = {s: 0 for s in closes.columns}
    pending: dict[str, int] = {}
    after: list[tuple[pd.Timestamp, dict[str, int]]] = []
    for i, day in enumerate(closes.index):
        price = closes.iloc[i]
        if pending:
            for symbol, delta in sorted(pending.items(), key=lambda kv: (kv[1] > 0, kv[0])):
                if delta > 0 and _cents(delta * price[symbol]) > cash_cents:
                    delta = math.floor(cash_cents / 100.0 / price[symbol])
                    while delta > 0 and _cents(delta * price[symbol]) > cash_cents:
                        delta -= 1
                cash_cents -= _cents(delta * price[symbol]) if delta > 0 else -_cents(-delta * price[symbol])
                held[symbol] += delta
            pending = {}
            after.append((day, {s: q for s, q in held.items() if q}))
        if first_day[i] and lookback <= i < len(closes) - 1:
            equity = cash_cents / 100.0
            for symbol in closes.columns:
                if held[symbol]:
                    equity += held[symbol] * price[symbol]
            chosen = rank.iloc[i] <= top
            for symbol in closes.columns:
                weight = 1.0 / top if chosen[symbol] else 0.0
                delta = math.floor(weight * equity / price[symbol]) - held[symbol]
                if delta:
                    pending[symbol] = delta
    last = closes.iloc[-1]
    for symbol, qty in held.items():
        cash_cents += _cents(qty * last[symbol])
    return after, cash_cents / 100.0


@pytest.fixture(scope="module")
def momentum_run(tmp_path_factory: pytest.TempPathFactory) -> tape.Result:
    log = tmp_path_factory.mktemp("portfolio") / "tape.db"
    return tape.backtest(
        universe="sp500_20",
        strategy="momentum",
        rebalance="monthly",
        start=START,
        end=END,
        slippage_bps=0,
        commission=0,
        log=log,
    )


def _holdings_after_each_fill_day(result: tape.Result) -> list[tuple[str, dict[str, int]]]:
    held: dict[str, float] = {}
    days: dict[int, dict[str, int]] = {}
    with EventLog.open(result.log, readonly=True) as log:
        for record in run_events(log, result.run_id):
            event = record.event
            if isinstance(event, Fill) and event.reason == "rebalance":
                held[event.symbol] = held.get(event.symbol, 0.0) + (
                    event.qty if event.side == "buy" else -event.qty
                )
                days[event.ts] = {s: int(q) for s, q in held.items() if q}
    return [
        (pd.Timestamp(ts, tz="UTC").tz_convert("America/New_York").strftime("%Y-%m-%d"), h)
        for ts, h in days.items()
    ]


def test_momentum_holdings_after_every_rebalance_equal_the_pandas_reference(
    momentum_run: tape.Result,
) -> None:
    expected, _ = reference_momentum()
    got = _holdings_after_each_fill_day(momentum_run)
    assert [(d.strftime("%Y-%m-%d"), h) for d, h in expected] == got
    assert len(got) >= 60  # every month from the first full look-back on


def test_momentum_final_equity_matches_the_pandas_reference_to_the_cent(momentum_run: tape.Result) -> None:
    _, final = reference_momentum()
    assert round(momentum_run.summary["final_equity"], 2) == round(final, 2)


def test_each_rebalance_is_one_decision_with_targets_current_weights_scores_and_orders(
    momentum_run: tape.Result,
) -> None:
    with EventLog.open(momentum_run.log, readonly=True) as log:
        decisions = [r.event for r in run_events(log, momentum_run.run_id) if isinstance(r.event, Rebalanced)]
    second = decisions[1]
    assert [d.n for d in decisions] == list(range(1, len(decisions) + 1))
    assert sorted(w for w in second.targets.values() if w) == [0.2] * 5
    assert sum(second.current.values()) == pytest.approx(1.0, abs=0.05)
    assert {"score", "rank"} <= set(second.values["AAPL"])
    assert second.orders and all(q == int(q) for q in second.orders.values())


def test_rebalance_option_given_to_a_signal_strategy_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(tape.ConfigError, match="only portfolio strategies"):
        tape.backtest("AAPL", "sma_cross", rebalance="weekly", log=tmp_path / "t.db")


def test_weekly_rebalances_on_the_first_trading_day_of_each_week(tmp_path: Path) -> None:
    result = tape.backtest(
        universe="sp500_20",
        strategy="momentum",
        params={"lookback": 30, "skip": 5, "top": 3},
        rebalance="weekly",
        start="2019-01-01",
        end="2019-06-30",
        log=tmp_path / "t.db",
    )
    with EventLog.open(result.log, readonly=True) as log:
        days = [
            pd.Timestamp(r.event.ts, tz="UTC").tz_convert("America/New_York")
            for r in run_events(log, result.run_id)
            if isinstance(r.event, Rebalanced)
        ]
    trading = pd.read_csv(SP500_20, index_col="Date", parse_dates=True).loc["2019-01-01":"2019-06-30"].index
    weeks = trading.isocalendar().week.to_numpy()
    first_of_week = {
        d.strftime("%Y-%m-%d") for d, w, p in zip(trading[1:], weeks[1:], weeks[:-1], strict=True) if w != p
    }
    assert len(days) > 15
    assert {d.strftime("%Y-%m-%d") for d in days} <= first_of_week
