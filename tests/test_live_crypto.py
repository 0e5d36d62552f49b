"""Live crypto trading against the Alpaca emulator with Alpaca's crypto rules: no OCO (a pair's stop is a
stop-limit at the broker, its target is watched by the session) and fees taken from the credited asset.

A simulated clock walks a 24/7 schedule of 5-minute cycles over scripted BTC/USD minutes; between two
cycles every minute's close is traded at the emulator, so a stop-limit can fill while the session
sleeps, as it would live. The script: a rise makes SMA(2) cross above SMA(4) (entry); a fall inside
one 5-minute window goes through the stop and fills the stop-limit at the broker; a second entry
rises through its target, which the session takes at market.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pytest

from tape.actors.alpaca.broker import AlpacaBroker
from tape.actors.alpaca.feed import AlpacaBarFeed
from tape.actors.clock import SimulatedClock
from tape.actors.live_session import NOT_SENT, LiveSession, run_schedule
from tape.events.backtest import BacktestConfig
from tape.events.costs import CostModel
from tape.events.errors import ConfigError
from tape.events.portfolio_state import PortfolioState, evolve
from tape.events.risk import RiskConfig
from tape.store.backtests import replay_report
from tape.store.credentials import AlpacaCredentials
from tape.store.log import EventLog
from tests.alpaca_emulator import AlpacaEmulator
from tests.conftest import TapeRunner, assert_clean_failure
from tests.test_live import _emulator_env

PAIR = "BTC/USD"
MINUTE = 60_000_000_000
T0 = int(pd.Timestamp("2024-03-04 00:00", tz="UTC").value)  # the session starts here
RUN = "live-crypto-test"


def _at(minutes: int) -> int:
    return T0 + minutes * MINUTE


def _script(*, gap: bool = False) -> list[float]:
    """Minute closes from T0: 5-minute bars rise (entry at the first bar's close, 30,050), fall through
    the stop inside one bar (the stop-limit fills at 28,400, inside its band), bottom out, rise again
    (second entry) and climb through the second entry's target. ``gap``: the fall jumps below the
    stop-limit's band instead, so the broker cannot fill it and the session sells at market."""
    fall = [30_150, 29_500, 27_000, 27_100, 27_050] if gap else [30_150, 29_500, 28_400, 28_300, 28_350]
    bars: list[list[float]] = [[30_050] * 5, [30_100] * 5, [30_150] * 5, [30_200] * 5, fall]
    bars += [[c] * 5 for c in (28_200, 28_100, 28_000, 27_950, 27_900, 28_000, 28_050)]
    bars += [[c] * 5 for c in range(28_400, 31_700, 400)]  # through the second entry's target
    bars += [[31_600] * 5 for _ in range(6)]
    return [float(c) for bar in bars for c in bar]


class Market:
    """BTC/USD minutes: a day of slow decline before T0 (the warm-up), then the script. Each clock
    advance trades every minute that closed since the last one at the emulator, in order."""

    def __init__(self, emulator: AlpacaEmulator, script: list[float]) -> None:
        self.emulator = emulator
        history = np.linspace(31_000.0, 30_000.0, 1440)
        self.closes = np.concatenate([history, np.array(script)])
        self.ts = T0 + MINUTE * (np.arange(len(self.closes)) - len(history))
        self.faults: dict[int, Callable[[], None]] = {}
        opens = np.concatenate([[self.closes[0]], self.closes[:-1]])
        emulator.add_bars(
            PAIR,
            [
                (dt.datetime.fromtimestamp(t / 1e9, tz=dt.UTC), o, max(o, c), min(o, c), c, 2.0)
                for t, o, c in zip(self.ts, opens, self.closes, strict=True)
            ],
        )
        self.traded = 0  # minutes whose close has been traded at the emulator

    def advance(self, now_ns: int) -> None:
        for when, fault in list(self.faults.items()):
            if now_ns >= when:
                fault()
                del self.faults[when]
        done = int(np.searchsorted(self.ts + MINUTE, now_ns, side="right"))
        for k in range(self.traded or done - 1, done):  # the warm-up's last minute, then each one
            self.emulator.set_time(dt.datetime.fromtimestamp((self.ts[k] + MINUTE) / 1e9, tz=dt.UTC))
            self.emulator.set_price(PAIR, float(self.closes[k]))
        self.traded = max(self.traded, done)
        self.emulator.set_time(dt.datetime.fromtimestamp(now_ns / 1e9, tz=dt.UTC))


CONFIG = BacktestConfig(
    symbols=[PAIR],
    strategy="sma_cross",
    params={"short": 2, "long": 4},
    timeframe="5Min",
    cash=100_000.0,
    cost=CostModel(slippage_bps=5, commission=0),  # fees and stop band: Alpaca's defaults for pairs
    risk=RiskConfig(fixed_qty=1, stop_loss_pct=5, take_profit_pct=10),
)

Start = Callable[..., LiveSession]


@pytest.fixture
def crypto_run(alpaca_emulator: AlpacaEmulator, tmp_path: Path) -> Callable[..., tuple[Market, Start]]:
    """``make(gap=False, config=CONFIG)`` seeds the script; ``start(until_minute, begin_minute=0,
    on_cycle=None)`` runs one LiveSession of ``config`` (resuming the run when the log holds it) and
    stops it."""
    credentials = AlpacaCredentials(
        api_key=alpaca_emulator.key_id,
        secret_key=alpaca_emulator.secret,
        base_url=alpaca_emulator.trading_url,
        data_url=alpaca_emulator.data_url,
    )

    def make(gap: bool = False, config: BacktestConfig = CONFIG) -> tuple[Market, Start]:
        market = Market(alpaca_emulator, _script(gap=gap))
        alpaca_emulator.set_cash(config.cash)  # the account holds what the session starts with

        def start(
            until: int,
            *,
            begin: int = 0,
            on_cycle: Callable[[LiveSession], None] | None = None,
        ) -> LiveSession:
            clock = SimulatedClock(_at(begin), on_advance=market.advance)
            market.advance(clock.now_ns())
            session = LiveSession(
                config,
                run_id=RUN,
                broker=AlpacaBroker(credentials, retry_wait_seconds=0),
                feed=AlpacaBarFeed(credentials, "5Min", retry_wait_seconds=0),
                log_path=tmp_path / "tape.db",
            )
            session.start(clock.now_ns(), days_back=1)
            run_schedule(
                session,
                clock,
                300,
                until_ns=_at(until),
                on_cycle=(lambda *_: on_cycle(session)) if on_cycle else None,
            )
            session.stop(clock.now_ns())
            return session

        return market, start

    return make


def _events(tmp_path: Path, kind: str) -> list[Any]:
    with EventLog.open(tmp_path / "tape.db") as log:
        return [r.event for r in log.read(stream_prefix=f"run/{RUN}") if r.kind == kind]


def _folded(tmp_path: Path, cash: float = CONFIG.cash) -> PortfolioState:
    state = PortfolioState(RUN, cash)
    with EventLog.open(tmp_path / "tape.db") as log:
        for record in log.read(stream_prefix=f"run/{RUN}"):
            evolve(state, record.event)
    return state


def _open_stop_limits(emulator: AlpacaEmulator) -> list[dict[str, Any]]:
    return [
        o
        for o in emulator.orders
        if o["type"] == "stop_limit" and o["status"] in ("new", "accepted", "partially_filled")
    ]


END = 5 * 27  # minutes: the whole script has been traded


def test_a_crypto_session_is_stopped_out_by_its_stop_limit_and_takes_its_target_at_market(
    crypto_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, start = crypto_run()
    start(END)
    closed = _events(tmp_path, "position_closed")
    assert [c.exit_reason for c in closed] == ["stop_loss", "take_profit"]
    assert closed[0].exit_price == 28_400  # the stop-limit filled at the broker, inside its band
    assert closed[1].exit_price >= closed[1].entry_price * 1.1  # sold at market at the target's bar
    orders = [(o.order_type, o.side, o.reason) for o in _events(tmp_path, "order_submitted")]
    assert orders == [
        ("market", "buy", "entry"),
        ("stop_limit", "sell", "protective"),
        ("market", "buy", "entry"),
        ("stop_limit", "sell", "protective"),
        ("market", "sell", "take_profit"),
    ]
    (cancel,) = _events(tmp_path, "order_cancelled")
    assert (cancel.client_order_id, cancel.reason) == (
        _events(tmp_path, "order_submitted")[3].client_order_id,
        "take_profit",
    )


def test_no_crypto_order_is_refused_by_the_broker(crypto_run, alpaca_emulator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, start = crypto_run()
    start(END)
    assert _events(tmp_path, "order_rejected") == []
    logged = [o.client_order_id for o in _events(tmp_path, "order_submitted")]
    at_broker = {o["client_order_id"]: o for o in alpaca_emulator.orders}
    assert set(logged) == set(at_broker) and len(logged) == len(at_broker)  # one broker order each
    assert {o["order_class"] for o in at_broker.values()} == {"simple"}
    assert all(o["status"] in ("filled", "canceled") for o in at_broker.values())


def test_the_logs_positions_cash_and_realised_pnl_equal_the_brokers_to_the_cent(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, start = crypto_run()
    start(END)
    state = _folded(tmp_path)
    assert state.positions == {} and alpaca_emulator.positions == {}
    assert state.cash_cents == round(alpaca_emulator.cash * 100)
    realised = sum(round(c.net_pnl * 100) for c in _events(tmp_path, "position_closed"))
    assert realised == state.realized_cents == round((alpaca_emulator.cash - CONFIG.cash) * 100)
    assert _events(tmp_path, "reconciled")[-1].differences == []


# Default sizing (no --qty): 2 % of 10,000 over a 5 % stop at 30,050 is 0.13311 BTC -> 0.1331.
SIZED = msgspec.structs.replace(CONFIG, cash=10_000.0, risk=RiskConfig(stop_loss_pct=5, take_profit_pct=10))


def test_a_default_sized_session_sends_its_entries_in_coin_steps(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, start = crypto_run(config=SIZED)
    start(END)
    entries = [o for o in alpaca_emulator.orders if o["side"] == "buy"]
    assert len(entries) == 2 and entries[0]["qty"] == "0.1331"  # as sent: four places at most
    assert all(len(o["qty"].split(".")[1]) <= 4 and o["status"] == "filled" for o in entries)
    assert [o.qty for o in _events(tmp_path, "risk_accepted")] == [float(o["qty"]) for o in entries]
    assert [c.exit_reason for c in _events(tmp_path, "position_closed")] == ["stop_loss", "take_profit"]


def test_a_default_sized_sessions_log_equals_the_broker_to_the_coin_and_the_cent(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, start = crypto_run(config=SIZED)
    held: list[tuple[float, float]] = []

    def check(session: LiveSession) -> None:  # mid-run: the fee-net position, coin for coin
        position = session.session.state.positions.get(PAIR)
        if position is not None:
            held.append((position.qty, alpaca_emulator.positions[PAIR]))

    start(END, on_cycle=check)
    assert held and all(log == broker for log, broker in held)
    state = _folded(tmp_path, SIZED.cash)
    assert state.positions == {} and alpaca_emulator.positions == {}
    assert state.cash_cents == round(alpaca_emulator.cash * 100)
    realised = sum(round(c.net_pnl * 100) for c in _events(tmp_path, "position_closed"))
    assert realised == state.realized_cents == round((alpaca_emulator.cash - SIZED.cash) * 100)
    assert all(r.differences == [] for r in _events(tmp_path, "reconciled"))


def test_a_crypto_fill_carries_the_fee_as_commission_and_the_quantity_net_of_it(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, start = crypto_run()
    start(END)
    by_order = {o["id"]: o["client_order_id"] for o in alpaca_emulator.orders}
    executions = {by_order[f.order_id]: f for f in alpaca_emulator.fills}  # one execution per order
    fills = _events(tmp_path, "fill")
    assert len(fills) == len(executions) == 4
    for fill in fills:
        execution = executions[fill.client_order_id]
        assert execution.liquidity == "taker"
        if fill.side == "buy":  # the fee was taken in bitcoin: the position is what arrived
            assert fill.qty == execution.qty - execution.fee == 0.9975
            assert fill.commission == pytest.approx(execution.fee * execution.price, abs=0.01)
        else:  # the fee was taken from the dollars
            assert fill.qty == execution.qty == 0.9975
            assert fill.commission == pytest.approx(execution.fee, abs=0.01)
        assert fill.commission == pytest.approx(fill.qty * fill.price * 0.0025, rel=0.003)


def test_the_stop_limit_rests_at_the_broker_between_cycles(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, start = crypto_run()
    held = []  # cycles that ended holding a position

    def check(session: LiveSession) -> None:
        state = session.session.state
        position = state.positions.get(PAIR)
        if position is None or PAIR in state.market_orders:  # flat, or the exit is under way
            assert _open_stop_limits(alpaca_emulator) == []
            return
        (order,) = _open_stop_limits(alpaca_emulator)  # exactly one, for all the log holds
        assert order["client_order_id"] == position.protective_id
        assert float(order["qty"]) == position.qty == alpaca_emulator.positions[PAIR]
        assert float(order["stop_price"]) == round(position.stop, 2)
        assert float(order["limit_price"]) == round(round(position.stop, 2) * 0.99, 2)  # 100 bps band
        held.append(session.cycles)

    start(END, on_cycle=check)
    assert len(held) >= 8  # both positions were held over several cycles


def test_a_restarted_session_resumes_mid_position_without_placing_an_order_twice(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, start = crypto_run()
    start(5 * 15)  # stops holding the second position, its stop-limit resting at the broker
    assert len(_folded(tmp_path).positions) == 1 and len(_open_stop_limits(alpaca_emulator)) == 1
    posts = sum(1 for r in alpaca_emulator.requests if r.method == "POST")
    start(END, begin=5 * 15)
    logged = [o.client_order_id for o in _events(tmp_path, "order_submitted")]
    at_broker = [o["client_order_id"] for o in alpaca_emulator.orders]
    assert len(logged) == len(set(logged)) and sorted(logged) == sorted(at_broker)
    assert sum(1 for r in alpaca_emulator.requests if r.method == "POST") == posts + 2  # resend, exit
    assert [c.exit_reason for c in _events(tmp_path, "position_closed")] == ["stop_loss", "take_profit"]
    started = _events(tmp_path, "actor_started")
    assert started[0].events_folded == 0 and started[1].events_folded > 0
    assert _folded(tmp_path).cash_cents == round(alpaca_emulator.cash * 100)
    assert _events(tmp_path, "reconciled")[-1].differences == []


def _crash_after_logging_a_take_profit(crypto_run, emulator, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Once the second position is open, the next DELETE (the take-profit's cancel of the stop-limit)
    is answered 401: the session raises out of the cycle after logging the cancel and the sell, before
    either reached the broker, as a crash there would. Returns (start, cancel, sell)."""
    market, start = crypto_run()
    market.faults[_at(5 * 15)] = lambda: emulator.fail_next(1, 401, "/v2/orders/")
    with pytest.raises(ConfigError):
        start(END)
    (cancel,) = _events(tmp_path, "order_cancelled")
    sell = _events(tmp_path, "order_submitted")[-1]
    return start, cancel, sell


def test_a_take_profit_whose_cancel_a_crash_stopped_is_cancelled_and_sold_on_restart(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    start, cancel, sell = _crash_after_logging_a_take_profit(crypto_run, alpaca_emulator, tmp_path)
    assert (cancel.reason, sell.reason) == ("take_profit", "take_profit")  # both logged ...
    assert [o["client_order_id"] for o in _open_stop_limits(alpaca_emulator)] == [cancel.client_order_id]
    assert sell.client_order_id not in {o["client_order_id"] for o in alpaca_emulator.orders}  # ... unsent
    # The restart, at the crashed cycle's time: the cancel goes first (the stop-limit holds the coins),
    # then the sell, once each.
    start(END, begin=(cancel.ts - T0) // MINUTE + 5)
    assert alpaca_emulator.order(cancel.client_order_id)["status"] == "canceled"
    assert alpaca_emulator.order(sell.client_order_id)["status"] == "filled"
    assert [c.exit_reason for c in _events(tmp_path, "position_closed")] == ["stop_loss", "take_profit"]
    logged = [o.client_order_id for o in _events(tmp_path, "order_submitted")]
    assert len(logged) == len(set(logged))
    assert sorted(logged) == sorted(o["client_order_id"] for o in alpaca_emulator.orders)
    assert _events(tmp_path, "order_rejected") == []
    assert alpaca_emulator.positions == {} and _folded(tmp_path).positions == {}
    assert _folded(tmp_path).cash_cents == round(alpaca_emulator.cash * 100)
    assert _events(tmp_path, "reconciled")[-1].differences == []


def test_a_gap_through_the_stop_limits_band_is_sold_at_market(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, start = crypto_run(gap=True)
    start(5 * 7)  # before the script's second entry
    closed = _events(tmp_path, "position_closed")
    assert [c.exit_reason for c in closed] == ["stop_loss"]
    assert closed[0].exit_price == 27_050  # below the band: the broker could not fill the stop-limit
    (cancel,) = _events(tmp_path, "order_cancelled")
    assert cancel.reason == "stop_loss"
    assert _open_stop_limits(alpaca_emulator) == [] and alpaca_emulator.positions == {}
    assert _folded(tmp_path).cash_cents == round(alpaca_emulator.cash * 100)


def test_a_fee_the_session_does_not_expect_is_reported_by_the_reconciliation(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alpaca_emulator.set_crypto_fees(maker_bps=15, taker_bps=40)  # the account's tier is not the config's
    _, start = crypto_run()
    start(5 * 4)  # holding the first position
    assert alpaca_emulator.positions == {PAIR: 0.996}
    assert _events(tmp_path, "reconciled")[-1].differences == ["BTC/USD: log 0.9975, broker 0.996"]
    # The stop-limit for what the log holds is more than the account has: refused once, and the
    # refused order is not kept as working (no re-send every cycle).
    (refused,) = _events(tmp_path, "order_rejected")
    assert "insufficient qty available" in refused.reason
    assert _folded(tmp_path).protective == {}


def test_a_pair_whose_stop_limit_the_broker_refused_is_stopped_out_by_the_session(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    def refuse_the_next_order(update: dict[str, Any]) -> None:
        if update["event"] == "fill" and update["order"]["client_order_id"] == f"{RUN}-o1":
            alpaca_emulator.reject_next_orders(1)  # the entry filled: its stop-limit is refused

    alpaca_emulator.broker.listeners.append(refuse_the_next_order)
    _, start = crypto_run()
    start(5 * 7)
    (refused,) = _events(tmp_path, "order_rejected")
    assert refused.client_order_id == f"{RUN}-o2"
    (closed,) = _events(tmp_path, "position_closed")
    # The fall's bar closed at 28,350, below the 28,547.50 stop: sold at market on that close.
    assert (closed.exit_reason, closed.exit_price) == ("stop_loss", 28_350)
    assert _events(tmp_path, "order_submitted")[-1].order_type == "market"
    assert alpaca_emulator.positions == {}
    assert _folded(tmp_path).cash_cents == round(alpaca_emulator.cash * 100)


def test_tape_trade_takes_the_crypto_fee_and_band_options_into_the_runs_config(
    tape: TapeRunner, alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    now = int(pd.Timestamp.now(tz="UTC").floor("min").value)
    close = 60_000 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.001, 1440)))
    stamps = now - MINUTE * np.arange(len(close), 0, -1)
    alpaca_emulator.add_bars(
        PAIR,
        [
            (dt.datetime.fromtimestamp(t / 1e9, tz=dt.UTC), c, c * 1.001, c * 0.999, c, 3.0)
            for t, c in zip(stamps, close, strict=True)
        ],
    )
    alpaca_emulator.set_price(PAIR, round(float(close[-1]), 2))
    args = ["trade", PAIR, "--broker", "alpaca", "--feed", "alpaca", "--interval", "1s", "--cycles", "1"]
    options = ["--fee-bps", "10", "--maker-fee-bps", "5", "--stop-band-bps", "50", "--days-back", "1"]
    result = tape(*args, *options, "--json", env=_emulator_env(alpaca_emulator))
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    with EventLog.open(tmp_path / "tape.db") as log:
        (started,) = [r.event for r in log.read(stream_prefix=f"run/{run_id}") if r.kind == "run_started"]
    assert started.config["cost"] == {
        "slippage_bps": 5.0,
        "commission": 2.5,
        "fee_bps": 10.0,
        "maker_fee_bps": 5.0,
        "stop_band_bps": 50.0,
    }


def test_a_bad_stop_band_is_one_clear_message(tape: TapeRunner) -> None:
    result = tape("trade", PAIR, "--broker", "alpaca", "--feed", "alpaca", "--stop-band-bps", "-1")
    assert_clean_failure(result, "--stop-band-bps must be between 0 and 10000 bps")


def test_a_pair_exit_whose_stop_limit_filled_before_its_cancel_is_not_sent_and_the_broker_sells_once(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    market, start = crypto_run()
    # Once the second position is open, its take-profit's cancel finds the stop-limit filled (the race
    # between a protective order and its cancel: the broker refuses the cancel, the session must not sell).
    market.faults[_at(5 * 15)] = alpaca_emulator.fill_before_next_cancel
    start(END)
    (cancel,) = [c for c in _events(tmp_path, "order_cancelled") if c.reason == "take_profit"]
    sell = _events(tmp_path, "order_submitted")[-1]
    assert sell.client_order_id not in {o["client_order_id"] for o in alpaca_emulator.orders}  # never sent
    (unsent,) = [c for c in _events(tmp_path, "order_cancelled") if c.reason == NOT_SENT]
    assert (sell.reason, unsent.client_order_id) == ("take_profit", sell.client_order_id)
    fills = [f for f in _events(tmp_path, "fill") if f.client_order_id == cancel.client_order_id]
    stop_limit = alpaca_emulator.order(cancel.client_order_id)
    assert [(f.reason, f.price) for f in fills] == [("stop_loss", float(stop_limit["stop_price"]))]
    assert [c.exit_reason for c in _events(tmp_path, "position_closed")] == ["stop_loss", "stop_loss"]
    assert alpaca_emulator.positions == {} and _folded(tmp_path).positions == {}
    assert _folded(tmp_path).cash_cents == round(alpaca_emulator.cash * 100)
    assert _events(tmp_path, "order_rejected") == []
    assert _events(tmp_path, "reconciled")[-1].differences == []
    with EventLog.open(tmp_path / "tape.db") as log:  # what `tape replay` folds
        report = replay_report(log, RUN)
    assert [t.exit_reason for t in report.trades] == ["stop_loss", "stop_loss"]
    assert round(sum(t.pnl for t in report.trades) * 100) == _folded(tmp_path).realized_cents


def test_a_pair_exit_whose_stop_limit_partly_filled_before_its_cancel_sells_the_rest_once(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    market, start = crypto_run()
    # The take-profit's cancel finds half the stop-limit filled: the half is a stop-loss part, the held
    # take-profit sell (for the whole position) is never sent, and a new one sells the rest.
    market.faults[_at(5 * 15)] = lambda: alpaca_emulator.fill_before_next_cancel(0.5)
    start(END)
    (cancel,) = [c for c in _events(tmp_path, "order_cancelled") if c.reason == "take_profit"]
    (unsent,) = [c for c in _events(tmp_path, "order_cancelled") if c.reason == NOT_SENT]
    held, rest = _events(tmp_path, "order_submitted")[-2:]
    assert (
        unsent.client_order_id == held.client_order_id and (held.reason, rest.reason) == ("take_profit",) * 2
    )
    (part,) = [f for f in _events(tmp_path, "fill") if f.client_order_id == cancel.client_order_id]
    assert part.reason == "stop_loss" and rest.qty == pytest.approx(held.qty - part.qty, abs=1e-12)
    at_broker = [o["client_order_id"] for o in alpaca_emulator.orders]
    assert held.client_order_id not in at_broker and at_broker.count(rest.client_order_id) == 1
    closes = _events(tmp_path, "position_closed")
    assert [c.exit_reason for c in closes] == ["stop_loss", "stop_loss", "take_profit"]
    assert [c.qty for c in closes[1:]] == [part.qty, rest.qty]
    assert alpaca_emulator.positions == {} and _folded(tmp_path).positions == {}  # flat at both ends
    assert _folded(tmp_path).cash_cents == round(alpaca_emulator.cash * 100)
    assert _events(tmp_path, "reconciled")[-1].differences == []
    with EventLog.open(tmp_path / "tape.db") as log:  # what `tape replay` folds
        report = replay_report(log, RUN)
    assert round(sum(t.pnl for t in report.trades) * 100) == _folded(tmp_path).realized_cents


def test_a_restart_sends_no_exit_when_the_stop_limit_filled_after_a_crash_logged_its_cancel(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # The session stops after logging the cancel and the sell, before either reached the broker ...
    start, cancel, sell = _crash_after_logging_a_take_profit(crypto_run, alpaca_emulator, tmp_path)
    assert [o["client_order_id"] for o in _open_stop_limits(alpaca_emulator)] == [cancel.client_order_id]
    # ... and the stop-limit fills while it is down: the restart's cancel finds it filled.
    alpaca_emulator.fill_before_next_cancel()
    start(END, begin=(cancel.ts - T0) // MINUTE + 5)
    assert sell.client_order_id not in {o["client_order_id"] for o in alpaca_emulator.orders}  # never sent
    fills = [f for f in _events(tmp_path, "fill") if f.client_order_id == cancel.client_order_id]
    assert [f.reason for f in fills] == ["stop_loss"]
    unsent = [c for c in _events(tmp_path, "order_cancelled") if c.reason == NOT_SENT]
    assert [c.client_order_id for c in unsent] == [sell.client_order_id]
    assert [c.exit_reason for c in _events(tmp_path, "position_closed")] == ["stop_loss", "stop_loss"]
    assert alpaca_emulator.positions == {} and _folded(tmp_path).positions == {}
    assert _folded(tmp_path).cash_cents == round(alpaca_emulator.cash * 100)
    assert _events(tmp_path, "reconciled")[-1].differences == []


def test_a_restart_whose_cancel_finds_the_stop_limit_partly_filled_sells_the_rest_once(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # The session stops after logging the cancel and the sell; while it is down half the stop-limit
    # fills, so the restart's cancel finds it partly filled: the restart books the half, never sends
    # the logged sell (it is for the whole position) and logs, then sends, a sell of the rest.
    start, cancel, sell = _crash_after_logging_a_take_profit(crypto_run, alpaca_emulator, tmp_path)
    alpaca_emulator.fill_before_next_cancel(0.5)
    begin = (cancel.ts - T0) // MINUTE + 5
    start(END, begin=begin)
    at_broker = [o["client_order_id"] for o in alpaca_emulator.orders]
    assert sell.client_order_id not in at_broker  # never sent
    rest = _events(tmp_path, "order_submitted")[-1]
    assert rest.reason == "take_profit" and at_broker.count(rest.client_order_id) == 1
    placed = pd.Timestamp(alpaca_emulator.order(rest.client_order_id)["created_at"]).value
    assert placed == _at(begin)  # sent by the restart itself, not left for its first cycle
    (part,) = [f for f in _events(tmp_path, "fill") if f.client_order_id == cancel.client_order_id]
    assert part.reason == "stop_loss" and rest.qty == pytest.approx(sell.qty - part.qty, abs=1e-12)
    assert [c.exit_reason for c in _events(tmp_path, "position_closed")] == [
        "stop_loss",
        "stop_loss",
        "take_profit",
    ]
    logged = [o.client_order_id for o in _events(tmp_path, "order_submitted")]
    assert len(logged) == len(set(logged)) and sorted(set(logged) - {sell.client_order_id}) == sorted(
        at_broker
    )
    assert alpaca_emulator.positions == {} and _folded(tmp_path).positions == {}
    assert _folded(tmp_path).cash_cents == round(alpaca_emulator.cash * 100)
    assert _events(tmp_path, "reconciled")[-1].differences == []


def test_an_exit_whose_stop_limit_cannot_be_read_back_after_its_cancel_waits_for_the_next_cycle(
    crypto_run, alpaca_emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    market, start = crypto_run()
    # The take-profit's cancel reaches the broker, but the read of the stop-limit after it fails: the
    # session cannot know whether the stop-limit filled first, so it does not sell in that cycle. The
    # read fails 4 times (alpaca-py's 3 retries of a 5xx, actors/alpaca/http.py), and the session does
    # not ask again in that cycle: a broker that is down must not stall it.
    market.faults[_at(5 * 15)] = lambda: alpaca_emulator.fail_after_next(
        "DELETE", "/v2/orders/", 4, 503, "/v2/orders:by_client_order_id", "GET"
    )
    start(END)
    (cancel,) = _events(tmp_path, "order_cancelled")
    sell = _events(tmp_path, "order_submitted")[-1]
    (alert,) = [a for a in _events(tmp_path, "alert") if a.rule == "broker"]
    assert alert.ts == cancel.ts and "HTTP 503" in alert.message
    (failed,) = [c for c in _events(tmp_path, "cycle_completed") if c.broker_errors]
    (sold,) = [f for f in _events(tmp_path, "fill") if f.client_order_id == sell.client_order_id]
    assert sold.ts > failed.ts  # sent by a later cycle, once the broker said the stop-limit was cancelled
    assert len([a for a in _events(tmp_path, "alert") if a.rule == "broker_cleared"]) == 1
    posts = [r for r in alpaca_emulator.requests if r.method == "POST"]
    assert len(posts) == 5  # two entries, their stop-limits, one exit: sent once
    assert alpaca_emulator.order(sell.client_order_id)["status"] == "filled"
    assert [c.exit_reason for c in _events(tmp_path, "position_closed")] == ["stop_loss", "take_profit"]
    assert alpaca_emulator.positions == {} and _folded(tmp_path).positions == {}
    assert _folded(tmp_path).cash_cents == round(alpaca_emulator.cash * 100)
    assert _events(tmp_path, "reconciled")[-1].differences == []
