"""Alpaca's asset flags, live: a session that may go short and declares no --shortable reads each stock's
asset at the local Alpaca emulator when its run opens and records the easy-to-borrow ones in its
RunStarted; a resumed session takes the list from the log, never from the broker again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

from tape.actors.alpaca.broker import AlpacaBroker
from tape.actors.alpaca.feed import AlpacaBarFeed
from tape.actors.clock import SimulatedClock
from tape.actors.live_session import LiveSession, run_schedule
from tape.events.backtest import BacktestConfig
from tape.events.bars import BarSeries
from tape.events.costs import CostModel
from tape.events.risk import RiskConfig
from tape.events.schema import Event, RiskAccepted, RiskRejected, RunStarted
from tape.events.strategies import LOADED, Strategy, install
from tape.store.log import EventLog
from tests.alpaca_emulator import AlpacaEmulator
from tests.crafted_live import emulator_credentials, utc
from tests.test_live_orders import NY, TS, WARM_UP

SPEC = "tests.sell_at:SellAt"
EASY, HARD = "AAA", "BBB"  # easy to borrow at Alpaca; not


class SellAt(Strategy):
    """SELL at ``at`` (a bar index), nothing else: with --direction both, a short from flat."""

    class Params(msgspec.Struct, frozen=True):
        at: int = 1

    def warmup(self) -> int:
        return 1

    def signals(self, bars: BarSeries) -> np.ndarray:
        side = np.zeros(len(bars), dtype=np.int8)
        if len(bars) > self.params.at:
            side[self.params.at] = -1
        return side


@pytest.fixture
def sell_at() -> Iterator[None]:
    install(SPEC, SellAt, {"kind": "test", "location": __file__, "class": "SellAt", "sha256": "0"})
    yield
    LOADED.pop(SPEC, None)


CONFIG = BacktestConfig(
    symbols=[EASY, HARD],
    strategy=SPEC,
    params={"at": WARM_UP},  # SELL on the close of the 8th's 15:00 bar, the first the session trades
    timeframe="5Min",
    cash=100_000.0,
    cost=CostModel(slippage_bps=0, commission=0),
    # an ATR trail: the indicators warmed before the run opened must survive the flags being read
    risk=RiskConfig(
        fixed_qty=10, direction="both", stop_loss_pct=0, take_profit_pct=0, trail_atr=2.0, atr_period=2
    ),
)


def _market(emulator: AlpacaEmulator) -> None:
    """Quiet bars at 100 for both stocks; shorting allowed; AAA easy to borrow, BBB not."""
    emulator.allow_shorting = True
    emulator.add_asset(EASY, shortable=True)
    emulator.add_asset(HARD, shortable=False)
    for symbol in (EASY, HARD):
        emulator.add_bars(symbol, [(utc(int(t)), 100.0, 100.2, 99.8, 100.0, 1000) for t in TS])
    emulator.set_price(EASY, 100.0)
    emulator.set_price(HARD, 100.0)


def _run(emulator: AlpacaEmulator, tmp_path: Path, *, begin: str, until: str) -> list[Event]:
    """A live session from ``begin`` to ``until`` (the 8th, New York); the run's log so far."""
    clock = SimulatedClock(pd.Timestamp(f"2024-07-08 {begin}", tz=NY).value)
    emulator.set_time(utc(clock.now_ns()))
    credentials = emulator_credentials(emulator)
    session = LiveSession(
        CONFIG,
        run_id="live-shortable",
        broker=AlpacaBroker(credentials, retry_wait_seconds=0),
        feed=AlpacaBarFeed(credentials, "5Min", retry_wait_seconds=0),
        log_path=tmp_path / "tape.db",
    )
    session.start(clock.now_ns(), days_back=3)
    run_schedule(session, clock, 300, until_ns=pd.Timestamp(f"2024-07-08 {until}", tz=NY).value)
    session.stop(clock.now_ns())
    with EventLog.open(tmp_path / "tape.db") as log:
        return [r.event for r in log.read(stream_prefix="run/live-shortable")]


def test_alpacas_easy_to_borrow_flags_name_the_stocks_a_broker_lets_the_account_short(
    alpaca_emulator: AlpacaEmulator,
) -> None:
    _market(alpaca_emulator)
    broker = AlpacaBroker(emulator_credentials(alpaca_emulator), retry_wait_seconds=0)
    # ZZZ is no asset at all (unknown: not shortable); a pair never is
    assert broker.easy_to_borrow([HARD, EASY, "ZZZ", "BTC/USD"]) == [EASY]


@pytest.mark.usefixtures("sell_at")
def test_a_live_session_records_alpacas_easy_to_borrow_stocks_and_refuses_a_short_in_the_others(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    _market(alpaca_emulator)
    events = _run(alpaca_emulator, tmp_path, begin="14:58", until="15:05")
    (opening,) = [e for e in events if isinstance(e, RunStarted)]
    assert opening.config["risk"]["shortable"] == EASY  # logged before anything was decided
    (refused,) = [e for e in events if isinstance(e, RiskRejected)]
    assert (refused.symbol, refused.rule) == (HARD, "not_shortable")
    assert f"{HARD} is not known to be easy to borrow" in refused.message
    assert [(o["symbol"], o["side"], o["type"]) for o in alpaca_emulator.orders] == [
        (EASY, "sell", "market"),
        (EASY, "buy", "stop"),  # the short's ATR trailing stop, 2 x 0.40 above its fill at 100
    ]
    assert [o["stop_price"] for o in alpaca_emulator.orders][1:] == ["100.8"]
    (accepted,) = [e for e in events if isinstance(e, RiskAccepted)]
    assert (accepted.symbol, round(accepted.checks["trail_distance"], 4)) == (EASY, 0.8)
    assert alpaca_emulator.positions == {EASY: -10.0}


@pytest.mark.usefixtures("sell_at")
def test_a_resumed_session_keeps_the_shortable_list_its_run_logged_whatever_alpaca_says_now(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    # The run opens at 14:58 with AAA alone easy to borrow; by the restart at 15:02 Alpaca calls BBB
    # easy to borrow too, but the run goes on with what its RunStarted says: BBB's short is refused.
    _market(alpaca_emulator)
    _run(alpaca_emulator, tmp_path, begin="14:58", until="14:59")
    alpaca_emulator.add_asset(HARD, shortable=True)
    events = _run(alpaca_emulator, tmp_path, begin="15:02", until="15:05")
    assert [e.config["risk"]["shortable"] for e in events if isinstance(e, RunStarted)] == [EASY]
    assert [(e.symbol, e.rule) for e in events if isinstance(e, RiskRejected)] == [(HARD, "not_shortable")]
    assert [(o["symbol"], o["side"]) for o in alpaca_emulator.orders] == [(EASY, "sell"), (EASY, "buy")]
