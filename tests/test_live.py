"""Live trading against the local Alpaca emulator, through the real alpaca-py clients.

A simulated clock walks the scheduler over 2024-07-03 (a half day), the 4th of July holiday, Friday
the 5th and Monday the 8th; at each wake-up the test's market moves the emulator's clock and prices
to that moment, so the session sees exactly what it would have seen live.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest
from alpaca.trading.client import TradingClient

from tape.actors.alpaca.broker import AlpacaBroker
from tape.actors.alpaca.feed import AlpacaBarFeed
from tape.actors.clock import SimulatedClock
from tape.actors.live_session import NOT_SENT, LiveSession, run_schedule
from tape.events.backtest import BacktestConfig
from tape.events.portfolio_state import PortfolioState, evolve
from tape.events.risk import RiskConfig
from tape.store.credentials import AlpacaCredentials
from tape.store.log import EventLog
from tests.alpaca_emulator import AlpacaEmulator
from tests.conftest import TapeRunner, assert_clean_failure

SYMBOLS = ["AAPL", "MSFT", "GOOG"]
SESSIONS = ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05", "2024-07-08"]
NY = "America/New_York"
MINUTE = 60_000_000_000


def _ns(text: str) -> int:
    return int(pd.Timestamp(text, tz=NY).value)


def _session_minutes() -> np.ndarray:
    import exchange_calendars as xc

    calendar = xc.get_calendar("XNYS")
    minutes = [calendar.session_minutes(day) for day in SESSIONS]
    # exchange_calendars labels a minute by its start: 09:30 .. 15:59 (12:59 on the half day).
    return np.concatenate([m.asi8 for m in minutes]).astype(np.int64)


class Market:
    """Seeded one-minute bars; moves the emulator's clock and last prices as time passes."""

    def __init__(self, emulator: AlpacaEmulator) -> None:
        self.emulator = emulator
        self.ts = _session_minutes()
        self.faults: dict[int, Callable[[], None]] = {}  # time -> fault injected when the clock passes it
        rng = np.random.default_rng(11)
        self.close: dict[str, np.ndarray] = {}
        self.rows: dict[str, list[tuple]] = {}  # type: ignore[type-arg]  # the seeded minutes
        for k, symbol in enumerate(SYMBOLS):
            wave = 0.004 * np.sin(np.arange(len(self.ts)) / (35.0 + 9 * k))  # swings that make SMA crosses
            close = (100.0 + 50 * k) * np.exp(np.cumsum(rng.normal(0, 0.0006, len(self.ts)) + wave / 30))
            self.close[symbol] = close
            opens = np.concatenate([[close[0]], close[:-1]])
            rows = [
                (
                    dt.datetime.fromtimestamp(t / 1e9, tz=dt.UTC),
                    o,
                    max(o, c) * 1.0005,
                    min(o, c) * 0.9995,
                    c,
                    1000 + i % 500,
                )
                for i, (t, o, c) in enumerate(zip(self.ts, opens, close, strict=True))
            ]
            emulator.add_bars(symbol, rows)
            self.rows[symbol] = rows

    def advance(self, now_ns: int) -> None:
        for when, fault in list(self.faults.items()):
            if now_ns >= when:
                fault()
                del self.faults[when]
        self.emulator.set_time(dt.datetime.fromtimestamp(now_ns / 1e9, tz=dt.UTC))
        done = int(np.searchsorted(self.ts + MINUTE, now_ns, side="right"))  # minutes that have closed
        if done:
            for symbol in SYMBOLS:
                self.emulator.set_price(symbol, round(float(self.close[symbol][done - 1]), 2))


@pytest.fixture
def live_run(alpaca_emulator: AlpacaEmulator, tmp_path: Path):  # type: ignore[no-untyped-def]
    market = Market(alpaca_emulator)
    credentials = AlpacaCredentials(
        api_key=alpaca_emulator.key_id,
        secret_key=alpaca_emulator.secret,
        base_url=alpaca_emulator.trading_url,
        data_url=alpaca_emulator.data_url,
    )
    config = BacktestConfig(symbols=SYMBOLS, strategy="sma_cross", timeframe="5Min", cash=100_000.0)

    def start(
        run_until: str,
        *,
        begin: str = "2024-07-03 09:00",
        before_stop: Callable[[LiveSession], None] | None = None,
        risk: RiskConfig | None = None,
    ) -> tuple[LiveSession, list[int]]:
        clock = SimulatedClock(_ns(begin), on_advance=market.advance)
        market.advance(clock.now_ns())
        session = LiveSession(
            config if risk is None else msgspec.structs.replace(config, risk=risk),
            run_id="live-test",
            broker=AlpacaBroker(credentials, retry_wait_seconds=0),
            feed=AlpacaBarFeed(credentials, "5Min", retry_wait_seconds=0),
            log_path=tmp_path / "tape.db",
            trade_logs=tmp_path,  # logs/trades_<symbol>_<day>.csv under it
        )
        session.start(clock.now_ns(), days_back=3)
        cycles: list[int] = []
        run_schedule(session, clock, 300, until_ns=_ns(run_until), on_cycle=lambda r, _: cycles.append(r.ts))
        if before_stop is not None:
            before_stop(session)
        session.stop(clock.now_ns())
        return session, cycles

    return market, start, tmp_path


def _events(path: Path, kind: str) -> list:  # type: ignore[type-arg]
    with EventLog.open(path) as log:
        return [r.event for r in log.read(stream_prefix="run/live-test") if r.kind == kind]


def _top_level(orders: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    legs = {leg["id"] for o in orders for leg in o.get("legs") or []}
    return [o for o in orders if o["id"] not in legs]


def test_cycles_run_every_five_minutes_inside_sessions_only(live_run) -> None:  # type: ignore[no-untyped-def]
    _, start, tmp_path = live_run
    _, cycles = start("2024-07-08 10:00")
    local = pd.DatetimeIndex(np.array(cycles, dtype="datetime64[ns]"), tz="UTC").tz_convert(NY)
    days = sorted(set(local.strftime("%Y-%m-%d")))
    assert days == ["2024-07-03", "2024-07-05", "2024-07-08"]  # no holiday, no weekend
    assert all(t.minute % 5 == 0 and t.second == 0 for t in local)
    for day, first, last, count in [
        ("2024-07-03", "09:30", "12:55", 42),  # half day: the bell rings at 13:00
        ("2024-07-05", "09:30", "15:55", 78),
        ("2024-07-08", "09:30", "10:00", 7),
    ]:
        times = local[local.strftime("%Y-%m-%d") == day].strftime("%H:%M")
        assert (times[0], times[-1], len(times)) == (first, last, count)
    logged = _events(tmp_path / "tape.db", "cycle_completed")
    assert [e.ts for e in logged] == cycles and all(e.duration_ms >= 0 for e in logged)


def test_orders_fills_positions_and_trade_logs_agree_with_the_broker(live_run) -> None:  # type: ignore[no-untyped-def]
    market, start, tmp_path = live_run
    start("2024-07-08 15:55")
    emulator = market.emulator
    log_path = tmp_path / "tape.db"
    submitted = _events(log_path, "order_submitted")
    at_broker = {o["client_order_id"]: o for o in _top_level(emulator.orders)}
    assert len(submitted) >= 6
    assert {o.client_order_id for o in submitted} == set(at_broker)  # one broker order per decision
    for order in submitted:
        placed = at_broker[order.client_order_id]
        assert (placed["symbol"], placed["side"], float(placed["qty"])) == (
            order.symbol,
            order.side,
            order.qty,
        )
    fills = _events(log_path, "fill")
    assert fills
    broker_fills: dict[str, list] = defaultdict(list)  # type: ignore[type-arg]
    by_id = {o["id"]: o["client_order_id"] for o in emulator.orders}
    for o in emulator.orders:
        for leg in o.get("legs") or []:
            by_id[leg["id"]] = o["client_order_id"]
    for f in emulator.fills:
        broker_fills[by_id[f.order_id]].append(f)
    for fill in fills:
        executions = broker_fills[fill.client_order_id]
        qty = sum(e.qty for e in executions)
        assert fill.qty == pytest.approx(qty)
        assert fill.price == pytest.approx(sum(e.qty * e.price for e in executions) / qty)
    state = PortfolioState("live-test", 100_000.0)
    with EventLog.open(log_path) as log:
        for record in log.read(stream_prefix="run/live-test"):
            evolve(state, record.event)
    held = {s: q for s, q in emulator.positions.items() if q}
    assert {s: p.qty for s, p in state.positions.items()} == held
    reconciled = _events(log_path, "reconciled")[-1]
    assert reconciled.differences == []
    closed = _events(log_path, "position_closed")
    assert closed
    rows = []
    for path in sorted((tmp_path / "logs").glob("trades_*.csv")):
        rows += pd.read_csv(path).to_dict("records")
    assert len(rows) == len(closed)
    assert sorted(
        (r["symbol"], r["qty"], r["entry_price"], r["exit_price"], round(r["pnl"], 2)) for r in rows
    ) == sorted((c.symbol, c.qty, c.entry_price, c.exit_price, round(c.net_pnl, 2)) for c in closed)
    # Each session day's close marks the equity and writes its summary, traded on or not.
    marks = _events(log_path, "equity_marked")
    summaries = {p.name: json.loads(p.read_text()) for p in (tmp_path / "logs").glob("daily_summary_*.json")}
    assert sorted(summaries) == sorted(f"daily_summary_{_day_of(m.ts)}.json" for m in marks)
    assert [summaries[f"daily_summary_{_day_of(m.ts)}.json"]["equity"] for m in marks] == [
        round(m.equity, 2) for m in marks
    ]


def test_a_restarted_session_writes_back_trade_logs_a_crash_left_behind(live_run) -> None:  # type: ignore[no-untyped-def]
    # A cycle writes only the days it changed, so a resumed run first writes its trade logs whole:
    # whatever a crash cut off between the log and the files comes back before trading goes on.
    _, start, tmp_path = live_run
    stop_at = "2024-07-05 12:00"
    start(stop_at)
    logs = tmp_path / "logs"
    before = {p.name: p.read_bytes() for p in logs.glob("*_*")}
    assert any(name.startswith("trades_") for name in before)
    for path in logs.iterdir():
        path.unlink()
    start(stop_at, begin=stop_at)  # resumes and stops: no cycle runs
    assert {p.name: p.read_bytes() for p in logs.glob("*_*")} == before


def _day_of(ts: int) -> str:
    return pd.Timestamp(ts, tz="UTC").tz_convert(NY).date().isoformat()


def test_the_sql_views_follow_a_running_session_cycle_by_cycle(live_run) -> None:  # type: ignore[no-untyped-def]
    _, start, tmp_path = live_run
    seen: dict[str, int] = {}

    def count_rows(_: LiveSession) -> None:  # the session is still open: no close has synced the views
        with sqlite3.connect(f"file:{tmp_path / 'tape.db'}?mode=ro", uri=True) as conn:
            for view in ("orders", "fills"):
                seen[view] = conn.execute(f"SELECT count(*) FROM {view}").fetchone()[0]

    start("2024-07-03 12:00", before_stop=count_rows)
    assert seen["orders"] == len(_events(tmp_path / "tape.db", "order_submitted")) > 0
    assert seen["fills"] == len(_events(tmp_path / "tape.db", "fill")) > 0


def test_a_restarted_session_resumes_without_placing_an_order_twice(live_run) -> None:  # type: ignore[no-untyped-def]
    market, start, tmp_path = live_run
    start("2024-07-05 12:00")
    orders_before = len(_top_level(market.emulator.orders))
    start("2024-07-08 15:55", begin="2024-07-05 12:00")
    submitted = _events(tmp_path / "tape.db", "order_submitted")
    ids = [o.client_order_id for o in submitted]
    at_broker = [o["client_order_id"] for o in _top_level(market.emulator.orders)]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(at_broker)
    assert len(at_broker) > orders_before
    started = _events(tmp_path / "tape.db", "actor_started")
    assert started[0].events_folded == 0 and started[1].events_folded > 0
    assert _events(tmp_path / "tape.db", "reconciled")[-1].differences == []


def _emulator_env(emulator: AlpacaEmulator) -> dict[str, str]:
    return {
        "ALPACA_API_KEY": emulator.key_id,
        "ALPACA_API_SECRET": emulator.secret,
        "ALPACA_BASE_URL": emulator.trading_url + "/v2",  # as the plan writes it
        "ALPACA_DATA_URL": emulator.data_url,
        "ALPACA_STREAM_URL": emulator.stream_base_url,  # the trade-update stream (on by default)
    }


def test_tape_trade_runs_a_live_crypto_session_on_the_wall_clock(
    tape: TapeRunner, alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    now = int(pd.Timestamp.now(tz="UTC").floor("min").value)
    rng = np.random.default_rng(3)
    close = 60_000 * np.exp(np.cumsum(rng.normal(0, 0.001, 2 * 1440)))
    stamps = now - MINUTE * np.arange(len(close), 0, -1)
    alpaca_emulator.add_bars(
        "BTC/USD",
        [
            (dt.datetime.fromtimestamp(t / 1e9, tz=dt.UTC), c, c * 1.001, c * 0.999, c, 3.0)
            for t, c in zip(stamps, close, strict=True)
        ],
    )
    alpaca_emulator.set_price("BTC/USD", round(float(close[-1]), 2))
    args = ["trade", "BTC/USD", "--broker", "alpaca", "--feed", "alpaca", "--interval", "1s"]
    result = tape(*args, "--cycles", "3", "--days-back", "1", "--json", env=_emulator_env(alpaca_emulator))
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["cycles"] == 3 and status["run_id"].startswith("live-")
    with EventLog.open(tmp_path / "tape.db") as log:
        events = list(log.read(stream_prefix=f"run/{status['run_id']}"))
    kinds = [r.kind for r in events]
    assert kinds.count("cycle_completed") == 3 and kinds[0] == "run_started"
    assert kinds[-1] == "actor_stopped" and "reconciled" in kinds
    # The trade-update stream is on by default: the session listened, and says so.
    assert alpaca_emulator.stream_connections["trading"] == 1 and "alert" not in kinds
    assert events[0].event.label.endswith("trade_updates=on") and "trade updates on" in result.stderr


def seed_crypto_minutes(emulator: AlpacaEmulator, seed: int, minutes: int) -> None:
    """BTC/USD one-minute bars up to now (a random walk) and its price: a crypto session on the wall
    clock has history to warm up on and a market to trade in."""
    now = int(pd.Timestamp.now(tz="UTC").floor("min").value)
    close = 60_000 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.001, minutes)))
    stamps = now - MINUTE * np.arange(len(close), 0, -1)
    emulator.add_bars(
        "BTC/USD",
        [
            (dt.datetime.fromtimestamp(t / 1e9, tz=dt.UTC), c, c * 1.001, c * 0.999, c, 3.0)
            for t, c in zip(stamps, close, strict=True)
        ],
    )
    emulator.set_price("BTC/USD", round(float(close[-1]), 2))


def test_live_trading_without_credentials_names_the_variable(tape: TapeRunner) -> None:
    env = {"ALPACA_API_KEY": "", "ALPACA_API_SECRET": ""}
    result = tape("trade", "AAPL", "--broker", "alpaca", "--feed", "alpaca", env=env)
    assert_clean_failure(result, "ALPACA_API_KEY is not set")


def test_mixing_a_live_feed_with_the_simulated_broker_is_refused(tape: TapeRunner) -> None:
    assert_clean_failure(
        tape("trade", "AAPL", "--broker", "sim", "--feed", "alpaca"), "--broker alpaca --feed alpaca"
    )


def test_rate_limits_and_server_errors_are_retried_and_each_decision_placed_once(live_run) -> None:  # type: ignore[no-untyped-def]
    market, start, tmp_path = live_run
    emulator = market.emulator
    market.faults[_ns("2024-07-03 10:00")] = lambda: emulator.fail_next(2, 429, "/v2/orders")
    market.faults[_ns("2024-07-05 10:00")] = lambda: emulator.fail_next(2, 503, "/v2/orders")
    start("2024-07-05 12:00")
    assert emulator.faults._failures == []  # every injected failure was met, and retried past
    ids = [o.client_order_id for o in _events(tmp_path / "tape.db", "order_submitted")]
    assert sorted(ids) == sorted(o["client_order_id"] for o in _top_level(emulator.orders))
    assert _events(tmp_path / "tape.db", "reconciled")[-1].differences == []


def test_a_data_outage_is_alerted_and_its_bars_back_filled_once(live_run) -> None:  # type: ignore[no-untyped-def]
    market, start, tmp_path = live_run
    market.faults[_ns("2024-07-05 10:00")] = lambda: market.emulator.fail_next(8, 500, "/v2/stocks")
    start("2024-07-05 12:00")
    alerts = _events(tmp_path / "tape.db", "alert")
    assert [a.rule for a in alerts] == ["feed", "feed_cleared"]  # two cycles failed: one alert
    bars = [(b.symbol, b.ts) for b in _events(tmp_path / "tape.db", "bar")]
    assert len(bars) == len(set(bars))  # nothing seen, so nothing decided, twice
    five = 5 * MINUTE
    expected = {
        (s, int(t))
        for s in SYMBOLS
        for t in range(_ns("2024-07-03 09:30"), _ns("2024-07-05 11:55") + 1, five)
        if _ns("2024-07-05 09:30") <= t or t < _ns("2024-07-03 13:00")
    }
    assert set(bars) == expected  # the gap was back-filled over REST


def test_a_rejected_order_is_logged_and_leaves_no_position(live_run) -> None:  # type: ignore[no-untyped-def]
    market, start, tmp_path = live_run
    market.emulator.reject_next_orders(1)
    start("2024-07-03 12:55")
    rejected = _events(tmp_path / "tape.db", "order_rejected")
    assert len(rejected) == 1 and rejected[0].reason == "rejected by the broker"
    symbol = rejected[0].symbol
    opened_after = [p for p in _events(tmp_path / "tape.db", "position_opened") if p.symbol == symbol]
    state = PortfolioState("live-test", 100_000.0)
    with EventLog.open(tmp_path / "tape.db") as log:
        for record in log.read(stream_prefix="run/live-test"):
            evolve(state, record.event)
    assert (symbol in state.positions) == bool(opened_after and len(opened_after) % 2)  # no phantom position
    assert _events(tmp_path / "tape.db", "reconciled")[-1].differences == []


def _folded(path: Path) -> PortfolioState:
    state = PortfolioState("live-test", 100_000.0)
    with EventLog.open(path) as log:
        for record in log.read(stream_prefix="run/live-test"):
            evolve(state, record.event)
    return state


def test_an_exit_whose_oco_filled_before_its_cancel_is_not_sent_and_the_broker_sells_once(live_run) -> None:  # type: ignore[no-untyped-def]
    # The race: an exit signal cancels a position's OCO and sells, but the OCO fills at the broker after
    # the cycle's fill poll and before the cancel arrives (Alpaca then refuses the cancel).
    market, start, tmp_path = live_run
    emulator = market.emulator
    emulator.allow_shorting = True  # a margin account would let a second sell go short
    emulator.fill_before_next_cancel()  # the first exit signal's cancel finds its OCO filled
    start("2024-07-08 15:55")
    log_path = tmp_path / "tape.db"
    assert all(q > 0 for q in emulator.positions.values())  # sold once: nothing went short
    state = _folded(log_path)
    assert {s: p.qty for s, p in state.positions.items()} == {
        s: q for s, q in emulator.positions.items() if q
    }
    assert state.cash_cents == round(emulator.cash * 100)
    assert _events(log_path, "reconciled")[-1].differences == []
    (unsent,) = [c for c in _events(log_path, "order_cancelled") if c.reason == NOT_SENT]
    submitted = {o.client_order_id: o for o in _events(log_path, "order_submitted")}
    exit_order = submitted[unsent.client_order_id]
    (cancel,) = [
        c
        for c in _events(log_path, "order_cancelled")
        if c.ts == unsent.ts and c.symbol == unsent.symbol and c != unsent
    ]
    protective = submitted[cancel.client_order_id]
    assert (protective.reason, protective.symbol, exit_order.side) == (
        "protective",
        exit_order.symbol,
        "sell",
    )
    assert exit_order.client_order_id not in {o["client_order_id"] for o in emulator.orders}  # never sent
    (fill,) = [f for f in _events(log_path, "fill") if f.client_order_id == protective.client_order_id]
    assert fill.reason == "stop_loss" and fill.price == round(protective.stop_price, 2)  # sent in cents
    closed = [c for c in _events(log_path, "position_closed") if c.symbol == fill.symbol and c.ts == fill.ts]
    assert [(c.exit_reason, c.qty, c.exit_price) for c in closed] == [("stop_loss", fill.qty, fill.price)]


def test_an_exit_whose_oco_partly_filled_before_its_cancel_books_the_part_and_sells_the_rest(
    live_run,
) -> None:  # type: ignore[no-untyped-def]
    # The race, in part: the exit signal's cancel finds half the OCO filled. The part is booked, the held
    # exit (for the whole position) is never sent, and a new exit sells the rest for the same reason.
    market, start, tmp_path = live_run
    emulator = market.emulator
    emulator.allow_shorting = True
    emulator.fill_before_next_cancel(0.5)  # the first exit signal's cancel finds half its OCO filled
    session, _ = start("2024-07-08 15:55")
    log_path = tmp_path / "tape.db"
    assert all(q > 0 for q in emulator.positions.values())  # nothing went short
    assert not [a for a in _events(log_path, "alert") if "before its cancel" in a.message]
    (unsent,) = [c for c in _events(log_path, "order_cancelled") if c.reason == NOT_SENT]
    submitted = _events(log_path, "order_submitted")
    held = next(o for o in submitted if o.client_order_id == unsent.client_order_id)
    (cancel,) = [
        c
        for c in _events(log_path, "order_cancelled")
        if c.ts == unsent.ts and c.symbol == held.symbol and c != unsent
    ]
    (part_fill,) = [f for f in _events(log_path, "fill") if f.client_order_id == cancel.client_order_id]
    assert 0 < part_fill.qty < held.qty
    (rest,) = [
        o
        for o in submitted
        if o.ts == unsent.ts and o.symbol == held.symbol and o.side == "sell" and o != held
    ]
    assert (rest.reason, rest.qty, rest.order_type) == (held.reason, held.qty - part_fill.qty, "market")
    at_broker = [o["client_order_id"] for o in _top_level(emulator.orders)]
    assert held.client_order_id not in at_broker and at_broker.count(rest.client_order_id) == 1
    assert sorted(at_broker) == sorted(o.client_order_id for o in submitted if o != held)  # no duplicate
    closes = [
        c for c in _events(log_path, "position_closed") if c.symbol == held.symbol and c.ts >= unsent.ts
    ]
    assert [c.qty for c in closes[:2]] == [part_fill.qty, rest.qty]  # sold in two parts, then flat
    assert (closes[0].exit_reason, closes[1].exit_reason) == ("stop_loss", held.reason)
    state = _replays_to_the_session_and_the_broker(log_path, session, emulator)
    rows = _trade_csv_rows(tmp_path)
    assert len(rows) == len(_events(log_path, "position_closed"))  # one row per closing part
    assert round(sum(r["pnl"] for r in rows) * 100) == state.realized_cents
    for summary in (json.loads(p.read_text()) for p in (tmp_path / "logs").glob("daily_summary_*.json")):
        day_rows = [
            r
            for p in (tmp_path / "logs").glob(f"trades_*_{summary['date']}.csv")
            for r in pd.read_csv(p).to_dict("records")
        ]
        assert round(summary["realized_pnl"] * 100) == round(sum(r["pnl"] for r in day_rows) * 100)
    with sqlite3.connect(log_path) as conn:
        (net,) = conn.execute("SELECT round(sum(net_pnl) * 100) FROM daily_pnl").fetchone()
    assert net == state.realized_cents
    with EventLog.open(log_path) as log:
        assert log.verify().ok


def test_a_protective_the_venue_ends_part_filled_books_the_part_and_sells_the_rest_once(
    live_run,
) -> None:  # type: ignore[no-untyped-def]
    # While the session is down, the venue executes half of a position's OCO at its stop and cancels the
    # rest. The restarted session books the half as a stop-loss part and sells the rest at market, once.
    market, start, tmp_path = live_run
    emulator = market.emulator
    stop_at = "2024-07-05 09:40"
    start(stop_at)
    log_path = tmp_path / "tape.db"
    guard = min(_folded(log_path).protective.values(), key=lambda o: o.symbol)  # one of the open OCOs
    emulator.venue_ends(guard.client_order_id, 0.5)
    session, _ = start("2024-07-08 15:55", begin=stop_at)
    (part,) = [f for f in _events(log_path, "fill") if f.client_order_id == guard.client_order_id]
    assert 0 < part.qty < guard.qty and part.reason == "stop_loss"
    (rest,) = [
        o
        for o in _events(log_path, "order_submitted")
        if o.symbol == guard.symbol and o.side == "sell" and o.ts == part.ts and o.order_type == "market"
    ]
    assert (rest.qty, rest.reason) == (guard.qty - part.qty, "stop_loss")
    closes = [c for c in _events(log_path, "position_closed") if c.symbol == guard.symbol and c.ts >= part.ts]
    assert [(c.qty, c.exit_reason) for c in closes[:2]] == [(part.qty, "stop_loss"), (rest.qty, "stop_loss")]
    ids = [o.client_order_id for o in _events(log_path, "order_submitted")]
    at_broker = [o["client_order_id"] for o in _top_level(emulator.orders)]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(at_broker)  # nothing placed twice or lost
    state = _replays_to_the_session_and_the_broker(log_path, session, emulator)
    assert round(sum(r["pnl"] for r in _trade_csv_rows(tmp_path)) * 100) == state.realized_cents


def _replays_to_the_session_and_the_broker(log_path: Path, session, emulator):  # type: ignore[no-untyped-def]
    """The log folds to the live session's positions, cash and realised P&L, and to the broker's
    positions and cash, and the last reconciliation found no difference. Returns the folded state."""
    state = _folded(log_path)
    live = session.session.state
    assert {s: p.qty for s, p in state.positions.items()} == {
        s: q for s, q in emulator.positions.items() if q
    }
    assert {s: p.qty for s, p in state.positions.items()} == {s: p.qty for s, p in live.positions.items()}
    assert (state.cash_cents, state.realized_cents) == (live.cash_cents, live.realized_cents)
    assert state.cash_cents == round(emulator.cash * 100)
    assert _events(log_path, "reconciled")[-1].differences == []
    return state


def test_a_stop_and_reverse_session_goes_short_at_the_broker_and_its_log_folds_to_the_broker(
    live_run,
) -> None:  # type: ignore[no-untyped-def]
    # --direction both live: a SELL signal covers any long, then sells short; Alpaca shows the short as
    # a negative quantity, and the log must fold to exactly what the broker holds, cash to the cent.
    market, start, tmp_path = live_run
    market.emulator.allow_shorting = True
    session, _ = start("2024-07-03 12:55", risk=RiskConfig(direction="both", shortable="*"))
    log_path = tmp_path / "tape.db"
    shorts = [p for p in _events(log_path, "position_opened") if p.qty < 0]
    assert shorts, "no short was opened"
    protective = [o for o in _events(log_path, "order_submitted") if o.reason == "protective"]
    short_guard = next(o for o in protective if o.symbol == shorts[0].symbol and o.ts >= shorts[0].ts)
    assert short_guard.side == "buy" and short_guard.stop_price > shorts[0].entry_price  # stop above
    sells = [o for o in _events(log_path, "order_submitted") if o.side == "sell" and o.reason == "entry"]
    assert {o.client_order_id for o in sells} <= {o["client_order_id"] for o in market.emulator.orders}
    _replays_to_the_session_and_the_broker(log_path, session, market.emulator)


def _trade_csv_rows(workdir: Path) -> list[dict]:  # type: ignore[type-arg]
    """Every row of the session's trade CSVs (logs/trades_<symbol>_<day>.csv)."""
    return [
        r
        for path in sorted((workdir / "logs").glob("trades_*.csv"))
        for r in pd.read_csv(path).to_dict("records")
    ]


def test_an_exit_the_broker_ends_part_filled_books_the_part_and_a_restart_sells_the_rest_once(
    live_run,
) -> None:  # type: ignore[no-untyped-def]
    # The first exit sells half, then the venue expires it. The session books the half and, in the same
    # cycle, logs and sends a new exit for the rest; it stops there, and the restarted session finds
    # the rest's order at the broker (filled) instead of placing it again.
    market, start, tmp_path = live_run
    emulator = market.emulator
    emulator.expire_next_market_part(0.5)
    stop_at = "2024-07-05 09:50"  # the cycle of the first exit signal (on the 09:45 bar)
    start(stop_at)
    log_path = tmp_path / "tape.db"
    sells = [o for o in _events(log_path, "order_submitted") if o.side == "sell" and o.order_type == "market"]
    first, rest = sells[0], sells[1]
    assert emulator.order(first.client_order_id)["status"] == "expired"
    (part,) = [f for f in _events(log_path, "fill") if f.client_order_id == first.client_order_id]
    assert 0 < part.qty < first.qty
    assert (rest.symbol, rest.reason, rest.qty, rest.ts) == (
        first.symbol,
        first.reason,
        first.qty - part.qty,
        part.ts,
    )
    session, _ = start("2024-07-08 15:55", begin=stop_at)
    submitted = _events(log_path, "order_submitted")
    ids = [o.client_order_id for o in submitted]
    at_broker = [o["client_order_id"] for o in _top_level(emulator.orders)]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(at_broker)  # nothing placed twice or lost
    closes = [c for c in _events(log_path, "position_closed") if c.symbol == first.symbol and c.ts >= part.ts]
    assert [(c.qty, c.exit_reason) for c in closes[:2]] == [
        (part.qty, first.reason),
        (rest.qty, first.reason),
    ]
    assert closes[1].ts > _ns(stop_at)  # the rest's fill was collected by the restarted session
    state = _replays_to_the_session_and_the_broker(log_path, session, emulator)
    rows = _trade_csv_rows(tmp_path)
    assert round(sum(r["pnl"] for r in rows) * 100) == state.realized_cents


# -- Alpaca's order states (legs only nested, pending_cancel, done_for_day) ----------------------------


def test_an_oco_whose_stop_leg_filled_is_booked_once_though_its_client_id_lookup_has_no_legs(
    live_run,
) -> None:  # type: ignore[no-untyped-def]
    # While the session is down, a position's OCO stops out: Alpaca cancels the parent (the take-profit)
    # and fills the held stop leg. By client id Alpaca answers the parent alone, canceled with nothing
    # filled; the stop is booked from the legs all the same, once, and no second exit is sent.
    market, start, tmp_path = live_run
    emulator = market.emulator
    emulator.allow_shorting = True  # a second exit would go short rather than be refused
    stop_at = "2024-07-05 09:40"
    start(stop_at)
    log_path = tmp_path / "tape.db"
    guard = min(_folded(log_path).protective.values(), key=lambda o: o.symbol)
    stopped_at = round(guard.stop - 0.5, 2)
    emulator.set_price(guard.symbol, stopped_at)  # through the stop
    trading = TradingClient(emulator.key_id, emulator.secret, url_override=emulator.trading_url)
    parent = trading.get_order_by_client_id(guard.client_order_id)
    assert (parent.status.value, parent.filled_qty, parent.legs) == ("canceled", "0", None)
    session, _ = start("2024-07-05 10:30", begin=stop_at)
    (fill,) = [f for f in _events(log_path, "fill") if f.client_order_id == guard.client_order_id]
    assert (fill.qty, fill.price, fill.reason) == (guard.qty, stopped_at, "stop_loss")
    assert guard.client_order_id not in {c.client_order_id for c in _events(log_path, "order_cancelled")}
    (closed, *_) = [c for c in _events(log_path, "position_closed") if c.symbol == guard.symbol]
    assert (closed.exit_reason, closed.qty, closed.ts) == ("stop_loss", guard.qty, fill.ts)
    exits = [o for o in _events(log_path, "order_submitted") if o.symbol == guard.symbol and o.ts == fill.ts]
    assert exits == []  # nothing else sold the position
    assert all(q >= 0 for q in emulator.positions.values())
    _replays_to_the_session_and_the_broker(log_path, session, emulator)


def test_a_cancel_pending_for_several_cycles_holds_the_exit_and_it_is_sent_once_after(
    live_run,
) -> None:  # type: ignore[no-untyped-def]
    # An exit signal cancels a position's OCO, and Alpaca keeps the cancel pending_cancel for three
    # cycles. The exit waits (unsent: the OCO could still fill), is never placed a second time under
    # another id, and is sent once the cancel completes.
    market, start, tmp_path = live_run
    emulator = market.emulator
    emulator.allow_shorting = True
    emulator.set_cancel_delay(None)  # cancels complete when this test says so
    pending_since: dict[str, int] = {}
    completed: dict[str, tuple[int, set[str]]] = {}  # client id -> (when, orders at the broker then)
    advance = market.advance

    def advance_then_complete_cancels(now_ns: int) -> None:
        advance(now_ns)
        for client_order_id in emulator.pending_cancels:
            since = pending_since.setdefault(client_order_id, now_ns)
            if now_ns - since >= 3 * 5 * MINUTE:  # seen pending at three cycles: the venue confirms
                at_broker = {o["client_order_id"] for o in emulator.orders}
                emulator.broker.complete_cancel(emulator.order(client_order_id)["id"])
                completed[client_order_id] = (now_ns, at_broker)
                emulator.set_cancel_delay(0)  # the later cancels complete at once

    market.advance = advance_then_complete_cancels  # type: ignore[method-assign]
    session, _ = start("2024-07-05 10:30")  # the first exit signal comes at 09:55 on the 5th
    log_path = tmp_path / "tape.db"
    assert completed, "no exit cancelled a protective order"
    protective_id = min(completed, key=lambda c: completed[c][0])
    completed_ns, at_broker_then = completed[protective_id]
    (cancel,) = [c for c in _events(log_path, "order_cancelled") if c.client_order_id == protective_id]
    waited = [c for c in _events(log_path, "cycle_completed") if cancel.ts <= c.ts < completed_ns]
    assert len(waited) >= 3
    assert any("pending_cancel" in a.message for a in _events(log_path, "alert"))
    (exit_order,) = [
        o for o in _events(log_path, "order_submitted") if o.ts == cancel.ts and o.symbol == cancel.symbol
    ]
    assert exit_order.side == "sell" and exit_order.client_order_id not in at_broker_then  # held back
    sells = [
        o
        for o in _top_level(emulator.orders)
        if o["symbol"] == cancel.symbol and o["side"] == "sell" and o["client_order_id"] != protective_id
    ]
    assert exit_order.client_order_id in [o["client_order_id"] for o in sells]
    ids = [o.client_order_id for o in _events(log_path, "order_submitted")]
    at_broker = [o["client_order_id"] for o in _top_level(emulator.orders)]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(at_broker)  # nothing placed twice or lost
    (fill,) = [f for f in _events(log_path, "fill") if f.client_order_id == exit_order.client_order_id]
    assert fill.qty == exit_order.qty and fill.ts >= completed_ns
    assert all(q >= 0 for q in emulator.positions.values())
    _replays_to_the_session_and_the_broker(log_path, session, emulator)


def test_a_protective_done_for_day_is_booked_ended_and_cancelled_so_it_cannot_resume(
    live_run,
) -> None:  # type: ignore[no-untyped-def]
    # Alpaca lists a done_for_day order as open, but it executes nothing until the next trading day.
    # Tape counts it ended, as every other reader of a status does, and cancels it at the broker, so an
    # order its books have closed cannot wake up tomorrow.
    market, start, tmp_path = live_run
    emulator = market.emulator
    stop_at = "2024-07-05 09:40"
    start(stop_at)
    log_path = tmp_path / "tape.db"
    guard = min(_folded(log_path).protective.values(), key=lambda o: o.symbol)
    emulator.mark_done_for_day(guard.client_order_id)
    session, _ = start("2024-07-05 10:00", begin=stop_at)
    (ended,) = [c for c in _events(log_path, "order_cancelled") if c.client_order_id == guard.client_order_id]
    assert ended.reason == "broker"
    assert guard.client_order_id not in {f.client_order_id for f in _events(log_path, "fill")}
    assert guard.symbol not in _folded(log_path).protective
    assert emulator.order(guard.client_order_id)["status"] == "canceled"
    ids = [o.client_order_id for o in _events(log_path, "order_submitted")]
    assert sorted(ids) == sorted(o["client_order_id"] for o in _top_level(emulator.orders))
    _replays_to_the_session_and_the_broker(log_path, session, emulator)
