"""Alpaca's order states and data quirks as the real API has them (shared alpaca/reference_payloads.json),
through the real alpaca-py clients against the emulator, and what tape's adapters make of them:
legs only when asked for, a held stop leg, pending_new, pending_cancel, done_for_day, an empty latest
trade and corrected (updated) minute bars."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderStatus, QueryOrderStatus
from alpaca.trading.requests import GetOrderByIdRequest, GetOrdersRequest

from tape.actors.alpaca.broker import AlpacaBroker
from tape.actors.alpaca.feed import AlpacaBarFeed
from tape.actors.alpaca.order_status import ENDED_STATUSES, WORKING_STATUSES, phase
from tape.actors.alpaca.stream import MinuteStream
from tape.events.errors import DataError
from tape.events.schema import OrderSubmitted
from tape.store.credentials import AlpacaCredentials
from tests.alpaca_emulator import AlpacaEmulator

MINUTE = 60_000_000_000


def _credentials(emu: AlpacaEmulator) -> AlpacaCredentials:
    return AlpacaCredentials(
        api_key=emu.key_id,
        secret_key=emu.secret,
        base_url=emu.trading_url,
        data_url=emu.data_url,
        stream_url=emu.stream_base_url,
    )


def _broker(emu: AlpacaEmulator, **options: object) -> AlpacaBroker:
    return AlpacaBroker(_credentials(emu), retry_wait_seconds=0, **options)  # type: ignore[arg-type]


def _trading(emu: AlpacaEmulator) -> TradingClient:
    return TradingClient(emu.key_id, emu.secret, url_override=emu.trading_url)


def _buy(coid: str, qty: float = 10) -> OrderSubmitted:
    return OrderSubmitted(ts=1, client_order_id=coid, intent_id="i", symbol="AAPL", side="buy", qty=qty)


def _oco(coid: str, qty: float = 10, limit: float = 110.0, stop: float = 95.0) -> OrderSubmitted:
    return OrderSubmitted(
        ts=2,
        client_order_id=coid,
        intent_id="i",
        symbol="AAPL",
        side="sell",
        qty=qty,
        order_type="oco",
        limit_price=limit,
        stop_price=stop,
    )


def _wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- legs and the held stop leg ------------------------------------------------------------------


def test_legs_come_only_when_asked_for_nested_and_never_by_client_id(
    trading_emulator: AlpacaEmulator,
) -> None:
    broker, trading = _broker(trading_emulator), _trading(trading_emulator)
    broker.submit(_buy("b1"))
    broker.submit(_oco("x1"))
    by_client_id = trading.get_order_by_client_id("x1")
    assert by_client_id.legs is None  # alpaca-py sends no nested flag there
    assert trading.get_order_by_id(by_client_id.id).legs is None
    (leg,) = trading.get_order_by_id(by_client_id.id, GetOrderByIdRequest(nested=True)).legs
    assert (leg.order_type.value, float(leg.stop_price)) == ("stop", 95.0)


def test_the_stop_leg_of_an_oco_is_held_while_its_take_profit_works(trading_emulator: AlpacaEmulator) -> None:
    broker, trading = _broker(trading_emulator), _trading(trading_emulator)
    broker.submit(_buy("b1"))
    broker.submit(_oco("x1"))
    parent = trading.get_order_by_client_id("x1")
    (leg,) = trading.get_order_by_id(parent.id, GetOrderByIdRequest(nested=True)).legs
    assert (parent.status, leg.status) == (OrderStatus.NEW, OrderStatus.HELD)
    trading_emulator.set_price("AAPL", 97.0)  # between the legs: nothing executes
    assert broker.order("x1").done is False
    trading_emulator.set_price("AAPL", 94.0)  # the held stop is armed: through it, it fills
    assert broker.positions() == {}


def test_an_oco_whose_stop_leg_filled_reads_filled_at_the_leg_though_its_client_id_lookup_has_no_legs(
    trading_emulator: AlpacaEmulator,
) -> None:
    broker = _broker(trading_emulator)
    broker.submit(_buy("b1"))
    oco = _oco("x1")
    broker.submit(oco)
    trading_emulator.set_price("AAPL", 94.0)
    assert (
        _trading(trading_emulator).get_order_by_client_id("x1").status == OrderStatus.CANCELED
    )  # the parent
    seen = broker.order("x1")
    assert (seen.status, seen.filled_qty, seen.filled_avg_price, seen.order_type) == (
        "filled",
        10,
        94.0,
        "stop",
    )
    fill = broker.new_fill(oco, ts=3, reason="stop_loss")
    assert fill is not None and (fill.qty, fill.price) == (10, 94.0)
    assert broker.new_fill(oco, ts=4, reason="stop_loss", logged_qty=10, logged_notional=940) is None
    nested = [r for r in trading_emulator.requests if r.path.startswith("/v2/orders/") and r.method == "GET"]
    assert nested and all(r.query.get("nested") == "True" for r in nested)  # read by id, nested


# -- pending_new, pending_cancel ---------------------------------------------------------------------


def test_a_routed_order_is_pending_new_and_working_until_the_venue_accepts_it(
    trading_emulator: AlpacaEmulator,
) -> None:
    trading_emulator.set_pending_new_delay(0.5)
    broker = _broker(trading_emulator)
    order = _buy("b1")
    placed = broker.submit(order)
    assert placed.status == "pending_new"  # as Alpaca answers a freshly placed order
    seen = broker.order("b1")
    assert (seen.status, seen.done) == ("pending_new", False)
    assert broker.new_fill(order, ts=2, reason="entry") is None
    assert [o.client_order_id for o in broker.orders("open")] == ["b1"]
    _wait_for(lambda: broker.order("b1").done)
    fill = broker.new_fill(order, ts=3, reason="entry")
    assert fill is not None and (fill.qty, fill.price) == (10, 100.0)


def test_a_cancel_is_pending_until_the_venue_completes_it_and_the_order_can_fill_meanwhile(
    trading_emulator: AlpacaEmulator,
) -> None:
    trading_emulator.set_cancel_delay(None)  # held pending until the test completes it
    broker, trading = _broker(trading_emulator), _trading(trading_emulator)
    broker.submit(_buy("b1"))
    broker.submit(_oco("x1"))
    broker.cancel("x1")
    seen = broker.order("x1")
    assert (seen.status, seen.done) == ("pending_cancel", False)
    assert trading_emulator.pending_cancels == ["x1"]
    broker.cancel("x1")  # asking again is accepted (204); it is still the one cancel
    assert "x1" in [o.client_order_id for o in broker.orders("open")]
    open_at_alpaca = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert "x1" in [o.client_order_id for o in open_at_alpaca]
    assert trading_emulator.complete_pending_cancels() == 1
    seen = broker.order("x1")
    assert (seen.status, seen.done, seen.filled_qty) == ("canceled", True, 0)
    # A second OCO whose cancel is pending: its held stop is still armed and fills through the stop.
    broker.submit(_oco("x2"))
    broker.cancel("x2")
    trading_emulator.set_price("AAPL", 94.0)
    seen = broker.order("x2")
    assert (seen.status, seen.filled_qty, seen.order_type) == ("filled", 10, "stop")
    assert trading_emulator.complete_pending_cancels() == 1  # completing it cancels nothing more
    assert broker.positions() == {}


def test_cancel_all_answers_its_orders_pending_cancel(trading_emulator: AlpacaEmulator) -> None:
    trading_emulator.set_cancel_delay(None)
    broker, trading = _broker(trading_emulator), _trading(trading_emulator)
    broker.submit(_buy("b1"))
    broker.submit(_oco("x1"))
    (answer,) = trading.cancel_orders()
    assert (answer.status, answer.body["status"]) == (200, "pending_cancel")
    trading_emulator.complete_pending_cancels()
    assert broker.order("x1").status == "canceled"


# -- done_for_day -------------------------------------------------------------------------------------


def test_done_for_day_is_ended_for_every_reader_though_alpaca_lists_it_open(
    trading_emulator: AlpacaEmulator,
) -> None:
    broker = _broker(trading_emulator, trade_updates=True)
    try:
        trading = _trading(trading_emulator)
        broker.submit(_buy("b1"))
        broker.submit(_oco("x1"))
        trading_emulator.mark_done_for_day("x1")
        open_at_alpaca = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
        assert [o.status for o in open_at_alpaca if o.client_order_id == "x1"] == [OrderStatus.DONE_FOR_DAY]
        seen = broker.order("x1")
        assert (seen.status, seen.done, seen.lingers) == ("done_for_day", True, True)
        assert "x1" not in [o.client_order_id for o in broker.orders("open")]
        assert "x1" in [o.client_order_id for o in broker.orders("closed")]
        assert broker.await_orders(["x1"], timeout=5)  # the trade-update stream counts it ended too
        assert broker.updates.status["x1"] == "done_for_day"
        trading_emulator.set_price("AAPL", 94.0)  # done for the day: nothing executes
        assert broker.positions() == {"AAPL": 10.0}
        broker.cancel("x1")  # still cancelable, so it cannot resume the next day
        assert broker.order("x1").status == "canceled"
    finally:
        broker.close()


def test_every_alpaca_order_status_has_one_meaning_for_tape() -> None:
    statuses = {s.value for s in OrderStatus}
    assert statuses == WORKING_STATUSES | ENDED_STATUSES | {"filled"}
    assert not WORKING_STATUSES & ENDED_STATUSES
    assert (phase("done_for_day"), phase("pending_cancel"), phase("held")) == ("ended", "working", "working")
    assert phase("some_new_status") == "working"  # unknown: wait, never book it ended


# -- market data ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["ZZZZ", "ZZZ/USD"])
def test_a_symbol_without_a_latest_trade_is_a_data_error_naming_it(
    alpaca_emulator: AlpacaEmulator, symbol: str
) -> None:
    alpaca_emulator.set_price("AAPL", 100.0)  # another symbol has one
    feed = AlpacaBarFeed(_credentials(alpaca_emulator), "5Min", retry_wait_seconds=0)
    assert feed.get_latest_price("AAPL") == 100.0
    with pytest.raises(DataError, match=re.escape(f"no latest trade for {symbol} ")):
        feed.get_latest_price(symbol)


def _push(emu: AlpacaEmulator, t0: int, minutes: range, close: float = 100.0) -> None:
    for m in minutes:
        when = dt.datetime.fromtimestamp((t0 + m * MINUTE) / 1e9, tz=dt.UTC)
        p = close + m * 0.1
        emu.push_bar("AAPL", p, p + 0.5, p - 0.5, p + 0.2, 100 + m, ts=when)


def _correct(emu: AlpacaEmulator, t0: int, minute: int, close: float) -> None:
    when = dt.datetime.fromtimestamp((t0 + minute * MINUTE) / 1e9, tz=dt.UTC)
    emu.push_updated_bar("AAPL", close, close + 1, close - 1, close, 999, ts=when)


def test_a_corrected_minute_bar_amends_a_window_not_yet_read_and_never_redecides_one_already_read(
    alpaca_emulator: AlpacaEmulator,
) -> None:
    emu = alpaca_emulator
    t0, bar = int(dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC).timestamp() * 1e9), 5 * MINUTE
    stream = MinuteStream(_credentials(emu), settle_seconds=2)
    rest = AlpacaBarFeed(_credentials(emu), "5Min", retry_wait_seconds=0)
    minutes = stream._minutes

    def arrived(minute: int, close: float) -> Callable[[], bool]:
        return lambda: minutes.get("AAPL", {}).get(t0 + minute * MINUTE, (0,) * 6)[5] == close

    try:
        stream.subscribe(["AAPL"])
        _wait_for(lambda: stream.connected)
        emu.wait_for_subscription("AAPL", "updatedBars")
        _push(emu, t0, range(0, 5))
        _wait_for(lambda: stream._links["stocks"].newest_ns == t0 + 4 * MINUTE)
        stream.window(["AAPL"], bar, t0 - bar, t0 + bar)  # the stream is current: AAPL counts from here
        _push(emu, t0, range(5, 10))
        decided = stream.window(["AAPL"], bar, t0, t0 + 2 * bar)
        assert decided.streamed == ["AAPL"] and [b.ts for b in decided.bars] == [t0 + bar]
        _correct(emu, t0, 7, 90.0)  # a late trade amends a minute of the bar already decided on
        _wait_for(arrived(7, 90.0))
        _push(emu, t0, range(10, 15))
        _correct(emu, t0, 12, 120.0)  # and one of the bar not read yet
        _wait_for(arrived(12, 120.0))
        after = stream.window(["AAPL"], bar, t0 + bar, t0 + 3 * bar)
        assert [b.ts for b in after.bars] == [t0 + 2 * bar]  # the decided bar is not handed over again
        (amended,) = after.bars
        assert amended.high == 121.0 and amended.low == pytest.approx(100 + 10 * 0.1 - 0.5)
        assert [tuple(b) for b in after.bars] == [
            tuple(b) for b in rest.completed(["AAPL"], t0 + bar, t0 + 3 * bar)
        ]
        assert stream.connected
    finally:
        stream.close()
