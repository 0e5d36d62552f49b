"""The order state machine and each intrabar rule of events/orders.py on crafted bars: every test names
the bar an order fills on (0 = the first bar after it was placed) and the price."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import numpy as np
import pytest

from tape.events.backtest import BacktestConfig, run_backtest
from tape.events.bars import BarSeries
from tape.events.costs import CostModel
from tape.events.orders import (
    Bar,
    OrderTransitionError,
    Outcome,
    Working,
    advance,
    entry_prices,
    time_exit,
    trail_distance,
    trail_exit,
    work,
)
from tape.events.risk import RiskConfig, protective_exit, short_protective_exit
from tape.events.schema import Fill
from tape.events.strategies import LOADED, Strategy, install
from tests.factories import daily_bars
from tests.test_session import replay_session

QUIET = Bar(100.0, 101.0, 99.0, 100.0)


def test_a_limit_buy_needs_the_price_to_trade_through_its_limit() -> None:
    touches = Bar(100.0, 101.0, 98.0, 100.0)  # low reaches 98 exactly
    through = Bar(100.0, 101.0, 97.5, 99.0)
    order = Working("buy", "limit", limit=98.0)
    assert work(order, [touches, through]) == Outcome("filled", 1, 98.0)


def test_a_limit_configured_to_fill_on_touch_fills_on_the_touching_bar() -> None:
    touches = Bar(100.0, 101.0, 98.0, 100.0)
    assert work(Working("buy", "limit", limit=98.0, touch=True), [touches]) == Outcome("filled", 0, 98.0)


def test_a_limit_sell_after_a_gap_up_fills_at_the_better_open() -> None:
    gap = Bar(105.0, 106.0, 104.0, 105.0)
    assert work(Working("sell", "limit", limit=102.0), [QUIET, gap]) == Outcome("filled", 1, 105.0)


def test_a_stop_buy_fills_at_its_stop_when_the_high_reaches_it() -> None:
    reaches = Bar(100.0, 103.0, 99.0, 102.0)
    assert work(Working("buy", "stop", stop=102.5), [QUIET, reaches]) == Outcome("filled", 1, 102.5)


def test_a_stop_sell_gapped_through_fills_at_the_worse_open() -> None:
    gap = Bar(94.0, 95.0, 93.0, 94.5)
    assert work(Working("sell", "stop", stop=97.0), [QUIET, gap]) == Outcome("filled", 1, 94.0)


def test_a_stop_limit_gapping_past_its_limit_does_not_fill_then_rests_as_a_limit() -> None:
    gap = Bar(106.0, 107.0, 105.5, 106.5)  # opens above the stop (102) and the limit (104)
    back = Bar(105.0, 105.5, 103.5, 104.0)  # trades through the 104 limit
    order = Working("buy", "stop_limit", stop=102.0, limit=104.0)
    assert work(order, [QUIET, gap, back]) == Outcome("filled", 2, 104.0)


def test_a_stop_limit_triggered_intrabar_fills_at_its_stop() -> None:
    reaches = Bar(100.0, 103.0, 99.5, 102.5)
    order = Working("buy", "stop_limit", stop=102.0, limit=104.0)
    assert work(order, [reaches]) == Outcome("filled", 0, 102.0)


def test_a_day_order_expires_at_the_end_of_its_session_unfilled() -> None:
    order = Working("buy", "limit", limit=90.0, tif="day")
    assert work(order, [QUIET, QUIET], session_ends=[False, True]) == Outcome("expired", 1, None)


def test_a_gtc_order_works_until_it_fills() -> None:
    dips = Bar(100.0, 100.5, 89.0, 90.0)
    order = Working("buy", "limit", limit=90.0, tif="gtc")
    assert work(order, [QUIET] * 5 + [dips]) == Outcome("filled", 5, 90.0)


def test_a_gtc_order_with_an_expiry_in_bars_expires_after_them() -> None:
    order = Working("buy", "limit", limit=90.0, tif="gtc", expire_bars=3)
    assert work(order, [QUIET] * 5) == Outcome("expired", 2, None)


def test_a_percent_trailing_stop_follows_completed_closes_and_fills_as_a_stop() -> None:
    bars = [
        Bar(100.0, 101.0, 99.0, 100.0),  # level 95 (5 % off the 100 high-water close)
        Bar(100.0, 111.0, 100.0, 110.0),  # checked at 95; close 110 -> level 104.5
        Bar(110.0, 112.0, 105.0, 106.0),  # low 105 stays above 104.5; close 106: level holds
        Bar(106.0, 107.0, 103.0, 104.0),  # low 103 reaches 104.5: filled there
    ]
    assert trail_exit("long", 100.0, bars, pct=5.0) == Outcome("filled", 3, pytest.approx(104.5))


def test_an_atr_trailing_stop_on_a_short_fills_at_its_level_above() -> None:
    bars = [
        Bar(50.0, 50.5, 49.0, 49.0),  # ATR 1 x 2 -> level 51 from the 49 close
        Bar(49.0, 49.5, 46.0, 46.0),  # close 46 -> level 48 (ATR 1)
        Bar(47.0, 48.5, 46.5, 48.0),  # high 48.5 reaches 48
    ]
    distances = [trail_distance(b.close, atr_multiple=2.0, atr=1.0) for b in bars]
    assert trail_exit("short", 50.0, bars, distances=distances) == Outcome("filled", 2, 48.0)


def test_a_trailing_stop_gapped_through_fills_at_the_open() -> None:
    bars = [Bar(100.0, 101.0, 99.0, 100.0), Bar(90.0, 91.0, 89.0, 90.0)]
    assert trail_exit("long", 100.0, bars, distances=[2.0, 2.0]) == Outcome("filled", 1, 90.0)


def test_a_time_exit_sells_at_the_open_after_the_nth_bar_held() -> None:
    bars = [Bar(100.0 + k, 101.0 + k, 99.0 + k, 100.5 + k) for k in range(6)]
    assert time_exit(bars, 3) == Outcome("filled", 3, 103.0)


def test_stop_is_assumed_before_target_when_one_bar_touches_both() -> None:
    wide = Bar(100.0, 111.0, 94.0, 105.0)
    assert protective_exit(95.0, 110.0, wide.open, wide.high, wide.low) == ("stop_loss", 95.0)
    assert short_protective_exit(105.0, 90.0, 100.0, 106.0, 89.0) == ("stop_loss", 105.0)


def test_entry_prices_come_from_the_signal_close() -> None:
    assert entry_prices("limit", "buy", 200.0, 0.5, 0.0)[0] == pytest.approx(199.0)
    assert entry_prices("stop", "sell", 200.0, 1.0, 0.0)[1] == pytest.approx(198.0)
    limit, stop = entry_prices("stop_limit", "buy", 100.0, 2.0, 1.0)
    assert (stop, limit) == pytest.approx((102.0, 103.02))


def test_the_state_machine_refuses_a_fill_after_a_cancel() -> None:
    assert advance(advance("new", "partially_filled"), "filled") == "filled"
    with pytest.raises(OrderTransitionError, match="cannot go from canceled to filled"):
        advance(advance("new", "canceled"), "filled")


# --------------------------------------------------------------------------- through the engine

SPEC = "tests:BuyAt"


class BuyAt(Strategy):
    """BUY at ``at`` (a bar index), nothing else."""

    class Params(msgspec.Struct, frozen=True):
        at: int = 1

    def warmup(self) -> int:
        return 1

    def signals(self, bars: BarSeries) -> np.ndarray:
        side = np.zeros(len(bars), dtype=np.int8)
        if len(bars) > self.params.at:  # the live form sees the bars so far
            side[self.params.at] = 1
        return side


@pytest.fixture
def buy_at() -> Iterator[None]:
    install(SPEC, BuyAt, {"kind": "test", "location": __file__, "class": "BuyAt", "sha256": "0"})
    yield
    LOADED.pop(SPEC, None)


def _engine_fills(bars: BarSeries, **risk: object) -> list[tuple[int, str, float]]:
    """(bar index, reason, price) of every fill of a run on ``bars``; the bar-by-bar session gives the
    same events."""
    config = BacktestConfig(
        symbols=[bars.symbol],
        strategy=SPEC,
        params={"at": 1},
        cost=CostModel(slippage_bps=0, commission=0),
        risk=RiskConfig(fixed_qty=10, take_profit_pct=0, **risk),  # type: ignore[arg-type]
    )
    events = run_backtest(config, [bars], run_id="r")
    assert replay_session(config, [bars], "r") == events[1:-1]
    index = {int(ts): k for k, ts in enumerate(bars.ts)}
    return [(index[e.ts], e.reason, e.price) for e in events if isinstance(e, Fill)]


@pytest.mark.usefixtures("buy_at")
def test_a_limit_entry_fills_on_the_bar_that_trades_through_it_in_backtest_and_session() -> None:
    # signal close 100 at bar 1 -> limit 99 (1 %); bar 2 touches 99, bar 3 trades through
    bars = daily_bars(
        "XYZ",
        [100, 100, 100, 99.5, 100, 100],
        open=[100, 100, 100, 100, 100, 100],
        high=[101, 101, 101, 101, 101, 101],
        low=[99.5, 99.5, 99.0, 98.0, 99.5, 99.5],
    )
    fills = _engine_fills(bars, entry_order="limit", entry_offset_pct=1.0, tif="gtc", stop_loss_pct=0)
    assert fills[0] == (3, "entry", 99.0)


@pytest.mark.usefixtures("buy_at")
def test_a_day_limit_entry_expires_unfilled_in_backtest_and_session() -> None:
    bars = daily_bars("XYZ", [100, 100, 100, 97, 97], low=[99.5, 99.5, 99.5, 96, 96])
    assert _engine_fills(bars, entry_order="limit", entry_offset_pct=1.0, stop_loss_pct=0) == []


@pytest.mark.usefixtures("buy_at")
def test_a_trailing_stop_exits_at_its_level_in_backtest_and_session() -> None:
    # entry at bar 2's open 100; 5 % trail: close 110 at bar 3 -> level 104.5, hit by bar 5's low
    bars = daily_bars(
        "XYZ",
        [100, 100, 100, 110, 106, 104, 104],
        open=[100, 100, 100, 100, 110, 106, 104],
        low=[99, 99, 99, 100, 105, 103, 103],
    )
    fills = _engine_fills(bars, trail_pct=5.0)
    assert fills == [(2, "entry", 100.0), (5, "stop_loss", pytest.approx(104.5))]


@pytest.mark.usefixtures("buy_at")
def test_a_time_exit_sells_at_the_open_after_the_nth_bar_in_backtest_and_session() -> None:
    bars = daily_bars("XYZ", [100, 100, 101, 102, 103, 104, 105], open=[100, 100, 100, 101, 102, 103, 104])
    fills = _engine_fills(bars, time_exit_bars=3, stop_loss_pct=0)
    assert fills == [(2, "entry", 100.0), (5, "time_exit", 103.0)]
