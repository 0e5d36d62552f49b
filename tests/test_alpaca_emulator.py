"""The Alpaca emulator, exercised only through the real alpaca-py clients (url_override)."""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient
from alpaca.data.live import CryptoDataStream, StockDataStream
from alpaca.data.requests import (
    CryptoBarsRequest,
    CryptoLatestTradeRequest,
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetCalendarRequest,
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)
from alpaca.trading.stream import TradingStream

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)  # 09:30 New York


NESTED = GetOrderByIdRequest(nested=True)  # legs come only when asked for, as Alpaca answers


def minute_rows(n: int, start: datetime = T0, base: float = 100.0) -> list[tuple]:
    return [
        (start + timedelta(minutes=i), base + i, base + i + 1, base + i - 1, base + i + 0.5, 10)
        for i in range(n)
    ]


@pytest.fixture
def stock_data(alpaca_emulator):
    return StockHistoricalDataClient(
        alpaca_emulator.key_id, alpaca_emulator.secret, url_override=alpaca_emulator.data_url
    )


# -- market-data REST ---------------------------------------------------------------------------


def test_stock_bars_page_across_symbols(alpaca_emulator, stock_data):
    emu = alpaca_emulator
    emu.add_bars("AAPL", minute_rows(30))
    emu.add_bars("MSFT", minute_rows(12, base=300))
    emu.set_page_size_cap(7)  # Alpaca may return fewer bars than `limit`: clients follow the token

    request = StockBarsRequest(symbol_or_symbols=["MSFT", "AAPL"], timeframe=TimeFrame.Minute, start=T0)
    barset = stock_data.get_stock_bars(request)

    assert [len(barset["AAPL"]), len(barset["MSFT"])] == [30, 12]
    assert [b.timestamp for b in barset["AAPL"]] == [T0 + timedelta(minutes=i) for i in range(30)]
    pages = [r for r in emu.requests if r.path == "/v2/stocks/bars"]
    assert len(pages) == 6  # ceil(42 / 7)
    assert "page_token" not in pages[0].query
    # Symbol-first order: the first token points into AAPL, at its 7th bar.
    assert base64.b64decode(pages[1].query["page_token"]) == b"AAPL|M|2024-01-02T14:36:00.000000000Z"


def test_stock_bars_limit_and_real_10000_pages(alpaca_emulator, stock_data):
    emu = alpaca_emulator
    emu.add_bars("SPY", minute_rows(12_500))
    # alpaca-py asks 10,000 per page: 12,500 bars take two pages.
    barset = stock_data.get_stock_bars(
        StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Minute, start=T0)
    )
    assert len(barset["SPY"]) == 12_500
    assert [r.query["limit"] for r in emu.requests] == ["10000", "10000"]
    # A user limit is honoured exactly.
    limited = stock_data.get_stock_bars(
        StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Minute, start=T0, limit=25)
    )
    assert len(limited["SPY"]) == 25


def test_stock_bars_timeframes_and_start_end(alpaca_emulator, stock_data):
    emu = alpaca_emulator
    frame = pd.DataFrame(
        minute_rows(120), columns=["timestamp", "open", "high", "low", "close", "volume"]
    ).set_index("timestamp")
    emu.add_bars("AAPL", frame)

    def bars(tf: TimeFrame, **kw):
        return stock_data.get_stock_bars(StockBarsRequest(symbol_or_symbols="AAPL", timeframe=tf, **kw))[
            "AAPL"
        ]

    five = bars(TimeFrame(5, TimeFrameUnit.Minute), start=T0)
    assert len(five) == 24
    assert (five[0].open, five[0].high, five[0].low, five[0].close, five[0].volume) == (
        100,
        105,
        99,
        104.5,
        50,
    )
    assert len(bars(TimeFrame(15, TimeFrameUnit.Minute), start=T0)) == 8
    hours = bars(TimeFrame.Hour, start=T0 - timedelta(minutes=30))
    assert [h.timestamp for h in hours] == [T0 - timedelta(minutes=30) + timedelta(hours=i) for i in range(3)]
    (day,) = bars(TimeFrame.Day, start=datetime(2024, 1, 2, tzinfo=UTC))
    assert day.timestamp == datetime(2024, 1, 2, 5, tzinfo=UTC)  # midnight New York
    assert (day.open, day.close, day.volume) == (100, 219.5, 1200)
    window = bars(TimeFrame.Minute, start=T0 + timedelta(minutes=10), end=T0 + timedelta(minutes=19))
    assert [b.open for b in window] == [110 + i for i in range(10)]


def test_single_symbol_bars_endpoint_pages_in_descending_order(alpaca_emulator, stock_data):
    alpaca_emulator.add_bars("AAPL", minute_rows(5))
    # alpaca-py has no wrapper for /v2/stocks/{symbol}/bars: page it with the client's own GET.
    params = {"timeframe": "1Min", "start": "2024-01-02", "limit": 2, "sort": "desc"}
    seen, pages = [], 0
    while True:
        page = stock_data.get("/stocks/AAPL/bars", params)
        pages += 1
        assert page["symbol"] == "AAPL"
        seen += [bar["t"] for bar in page["bars"]]
        if page["next_page_token"] is None:
            break
        params["page_token"] = page["next_page_token"]
    assert pages == 3
    assert seen == [f"2024-01-02T14:3{i}:00Z" for i in (4, 3, 2, 1, 0)]


def test_crypto_bars_btc_usd_without_keys(alpaca_emulator):
    emu = alpaca_emulator
    emu.add_bars("BTC/USD", minute_rows(90, start=datetime(2024, 1, 2, tzinfo=UTC), base=42_000))
    client = CryptoHistoricalDataClient(url_override=emu.data_url)  # crypto data needs no keys
    barset = client.get_crypto_bars(
        CryptoBarsRequest(symbol_or_symbols="BTC/USD", timeframe=TimeFrame.Hour, start=datetime(2024, 1, 2))
    )
    assert [b.open for b in barset["BTC/USD"]] == [42_000, 42_060]
    assert emu.requests[-1].path == "/v1beta3/crypto/us/bars"
    latest = client.get_crypto_latest_trade(CryptoLatestTradeRequest(symbol_or_symbols="BTC/USD"))
    assert latest["BTC/USD"].price == 42_089.5


def test_latest_trade_quote_and_bar(alpaca_emulator, stock_data):
    emu = alpaca_emulator
    emu.add_bars("AAPL", minute_rows(3))
    emu.add_trade("AAPL", 187.25, size=50)
    emu.set_quote("AAPL", bid=187.2, ask=187.3, bid_size=3, ask_size=4)

    trade = stock_data.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAPL"))["AAPL"]
    assert (trade.price, trade.size) == (187.25, 50)
    quotes = stock_data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=["AAPL", "NOPE"]))
    assert set(quotes) == {"AAPL"}
    assert (quotes["AAPL"].bid_price, quotes["AAPL"].ask_price, quotes["AAPL"].ask_size) == (187.2, 187.3, 4)
    bar = stock_data.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols="AAPL"))["AAPL"]
    assert bar.timestamp == T0 + timedelta(minutes=2)


def test_wrong_data_credentials_are_forbidden(alpaca_emulator):
    client = StockHistoricalDataClient(alpaca_emulator.key_id, "wrong", url_override=alpaca_emulator.data_url)
    with pytest.raises(APIError) as info:
        client.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAPL"))
    assert info.value.status_code == 403
    assert info.value.message == "forbidden."


# -- trading REST -------------------------------------------------------------------------------


@pytest.fixture
def trading(alpaca_emulator):
    return TradingClient(
        alpaca_emulator.key_id, alpaca_emulator.secret, url_override=alpaca_emulator.trading_url
    )


def market(symbol: str, qty: float, side: OrderSide = OrderSide.BUY, **kw) -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.DAY, **kw)


def api_error(call) -> APIError:
    with pytest.raises(APIError) as info:
        call()
    return info.value


def test_market_order_fills_and_moves_cash_and_positions(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("AAPL", 187.25)

    order = trading.submit_order(market("AAPL", 10, client_order_id="buy-1"))

    assert order.status == OrderStatus.ACCEPTED  # the POST answers before routing, as Alpaca's does
    filled = trading.get_order_by_client_id("buy-1")
    assert filled.id == order.id
    assert (filled.status, filled.filled_qty, filled.filled_avg_price) == (OrderStatus.FILLED, "10", "187.25")
    assert emu.positions == {"AAPL": 10.0}
    assert emu.cash == pytest.approx(100_000 - 1872.5)
    (fill,) = emu.fills
    assert (fill.order_id, fill.qty, fill.price, fill.position_qty) == (str(order.id), 10, 187.25, 10)
    assert len(fill.execution_id) == 36

    position = trading.get_open_position("AAPL")
    assert (position.qty, position.avg_entry_price, position.side.value) == ("10", "187.25", "long")
    emu.set_price("AAPL", 190)
    account = trading.get_account()
    assert (float(account.cash), float(account.equity)) == (98_127.5, 98_127.5 + 1900)
    assert float(trading.get_all_positions()[0].unrealized_pl) == 27.5


def test_duplicate_client_order_id_is_rejected(alpaca_emulator, trading):
    alpaca_emulator.set_price("AAPL", 100)
    trading.submit_order(market("AAPL", 1, client_order_id="same"))
    error = api_error(lambda: trading.submit_order(market("AAPL", 1, client_order_id="same")))
    assert (error.status_code, error.code, error.message) == (422, 40010001, "client_order_id must be unique")
    assert len(alpaca_emulator.orders) == 1


def test_order_rejections_use_alpacas_error_shape(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("AAPL", 100)
    unknown = api_error(lambda: trading.submit_order(market("NOPE", 1)))
    assert (unknown.status_code, unknown.code) == (422, 40010001)
    assert "NOPE" in unknown.message
    zero = api_error(lambda: trading.submit_order(market("AAPL", 0)))
    assert (zero.status_code, zero.message) == (422, "qty must be > 0")
    negative = api_error(lambda: trading.submit_order(market("AAPL", -5)))
    assert (negative.status_code, negative.message) == (422, "qty must be > 0")
    poor = api_error(lambda: trading.submit_order(market("AAPL", 2000)))
    assert (poor.status_code, poor.code, poor.message) == (403, 40310000, "insufficient buying power")
    assert poor.response.json()["buying_power"] == "100000"
    naked = api_error(lambda: trading.submit_order(market("AAPL", 1, OrderSide.SELL)))
    assert naked.status_code == 403 and naked.message.startswith("insufficient qty available")
    missing = api_error(lambda: trading.get_asset("NOPE"))
    assert (missing.status_code, missing.message) == (404, "asset not found for NOPE")
    assert emu.orders == [] and emu.cash == 100_000


def test_partial_fills_then_fill(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("AAPL", 50)
    emu.set_partial_fills(0.3, client_order_id="chunky")

    order = trading.submit_order(market("AAPL", 10, client_order_id="chunky"))
    first = trading.get_order_by_id(order.id)
    assert (first.status, first.filled_qty) == (OrderStatus.PARTIALLY_FILLED, "3")
    emu.set_price("AAPL", 51)
    emu.set_price("AAPL", 52)
    emu.set_price("AAPL", 53)
    done = trading.get_order_by_id(order.id)
    assert (done.status, done.filled_qty, done.filled_avg_price) == (OrderStatus.FILLED, "10", "51.2")
    assert [f.qty for f in emu.fills] == [3, 3, 3, 1]
    assert emu.positions == {"AAPL": 10}
    # Other orders still fill whole.
    whole = trading.submit_order(market("AAPL", 4))
    assert trading.get_order_by_id(whole.id).status == OrderStatus.FILLED


def test_resting_limit_and_stop_orders_trigger_on_crossing_prices(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("AAPL", 100)
    limit = trading.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=95
        )
    )
    emu.set_price("AAPL", 96)
    assert trading.get_order_by_id(limit.id).status == OrderStatus.NEW
    emu.set_price("AAPL", 94.9)  # through the limit: fills at the market price
    assert trading.get_order_by_id(limit.id).filled_avg_price == "94.9"
    stop = trading.submit_order(
        StopOrderRequest(
            symbol="AAPL", qty=10, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, stop_price=90
        )
    )
    emu.set_price("AAPL", 90.5)
    assert trading.get_order_by_id(stop.id).status == OrderStatus.NEW
    emu.set_price("AAPL", 89)
    assert trading.get_order_by_id(stop.id).status == OrderStatus.FILLED
    assert emu.positions == {} and emu.cash == pytest.approx(100_000 - 949 + 890)


def test_oco_leg_triggers_when_price_crosses(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("AAPL", 100)
    trading.submit_order(market("AAPL", 10))
    oco = trading.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=10,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=110),
            stop_loss=StopLossRequest(stop_price=95),
        )
    )
    emu.set_price("AAPL", 97)  # between the legs: nothing happens
    assert trading.get_order_by_id(oco.id).status == OrderStatus.NEW
    emu.set_price("AAPL", 94.5)  # through the stop

    after = trading.get_order_by_id(oco.id, NESTED)
    (stop_leg,) = after.legs
    assert (after.status, stop_leg.type.value, stop_leg.status) == (
        OrderStatus.CANCELED,
        "stop",
        OrderStatus.FILLED,
    )
    assert stop_leg.filled_avg_price == "94.5"
    assert emu.positions == {}
    assert emu.cash == pytest.approx(100_000 - 1000 + 945)


def test_bracket_entry_then_take_profit(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("MSFT", 400)
    bracket = trading.submit_order(
        market(
            "MSFT",
            5,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=420),
            stop_loss=StopLossRequest(stop_price=390),
        )
    )
    legs = {leg.type.value: leg.status.value for leg in trading.get_order_by_id(bracket.id, NESTED).legs}
    assert legs == {"limit": "new", "stop": "held"}  # the entry filled: the target works, the stop waits
    emu.set_price("MSFT", 421)
    legs = {leg.type.value: leg for leg in trading.get_order_by_id(bracket.id, NESTED).legs}
    assert (legs["limit"].status, legs["stop"].status) == (OrderStatus.FILLED, OrderStatus.CANCELED)
    assert emu.positions == {}


def test_cancel_one_and_all(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("AAPL", 100)
    resting = [
        trading.submit_order(
            LimitOrderRequest(
                symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=p
            )
        )
        for p in (90, 91, 92)
    ]
    trading.cancel_order_by_id(resting[0].id)
    assert trading.get_order_by_id(resting[0].id).status == OrderStatus.CANCELED
    again = api_error(lambda: trading.cancel_order_by_id(resting[0].id))
    assert (again.status_code, again.message) == (422, 'order is already in "canceled" state')

    responses = trading.cancel_orders()
    assert sorted(str(r.id) for r in responses) == sorted(str(o.id) for o in resting[1:])
    assert {r.status for r in responses} == {200}
    assert all(o["status"] == "canceled" for o in emu.orders)
    assert emu.cash == 100_000


def test_list_orders_by_status(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("AAPL", 100)
    trading.submit_order(market("AAPL", 1))
    trading.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=80
        )
    )
    canceled = trading.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=70
        )
    )
    trading.cancel_order_by_id(canceled.id)

    def statuses(which: QueryOrderStatus | None) -> list[str]:
        found = trading.get_orders(GetOrdersRequest(status=which) if which else None)
        return [o.status.value for o in found]

    assert statuses(None) == ["new"]  # default: open
    assert statuses(QueryOrderStatus.OPEN) == ["new"]
    assert statuses(QueryOrderStatus.CLOSED) == ["canceled", "filled"]  # newest first
    assert statuses(QueryOrderStatus.ALL) == ["canceled", "new", "filled"]


def test_close_positions(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("AAPL", 100)
    emu.set_price("BTC/USD", 40_000)
    trading.submit_order(market("AAPL", 10))
    trading.submit_order(
        MarketOrderRequest(symbol="BTC/USD", qty=0.25, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )
    assert {p.symbol for p in trading.get_all_positions()} == {"AAPL", "BTCUSD"}
    assert trading.get_open_position("BTCUSD").qty == "0.249375"  # 0.25 less the 25 bps taker fee

    trading.close_position("AAPL", ClosePositionRequest(qty="4"))
    assert emu.positions == {"AAPL": 6, "BTC/USD": 0.249375}
    results = trading.close_all_positions(cancel_orders=True)
    assert {r.symbol for r in results} == {"AAPL", "BTCUSD"} and {r.status for r in results} == {200}
    assert emu.positions == {}
    # Closing sells what is held: 0.249375 BTC for 9,975.00, less 24.94 of fee.
    assert emu.cash == pytest.approx(100_000 - 10_000 + 9_975 - 24.94)
    gone = api_error(lambda: trading.get_open_position("AAPL"))
    assert (gone.status_code, gone.code, gone.message) == (404, 40410000, "position does not exist")


def crypto(qty: float, side: OrderSide = OrderSide.BUY, **kw) -> MarketOrderRequest:
    return MarketOrderRequest(symbol="BTC/USD", qty=qty, side=side, time_in_force=TimeInForce.GTC, **kw)


def test_crypto_refuses_stop_and_trailing_stop_orders_like_alpaca(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("BTC/USD", 40_000)
    trading.submit_order(crypto(1))
    stop = api_error(
        lambda: trading.submit_order(
            StopOrderRequest(
                symbol="BTC/USD", qty=0.5, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, stop_price=38e3
            )
        )
    )
    refused = (422, 42210000, "invalid order type for crypto order")
    assert (stop.status_code, stop.code, stop.message) == refused
    trailing = api_error(
        lambda: trading.submit_order(
            TrailingStopOrderRequest(
                symbol="BTC/USD", qty=0.5, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, trail_percent=2
            )
        )
    )
    assert (trailing.status_code, trailing.message) == (422, "invalid order type for crypto order")
    assert len(emu.orders) == 1  # only the market buy was booked


def test_crypto_refuses_oco_and_bracket_orders(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("BTC/USD", 40_000)
    trading.submit_order(crypto(1))
    oco = api_error(
        lambda: trading.submit_order(
            LimitOrderRequest(
                symbol="BTC/USD",
                qty=0.5,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.GTC,
                order_class=OrderClass.OCO,
                limit_price=44_000,
                take_profit=TakeProfitRequest(limit_price=44_000),
                stop_loss=StopLossRequest(stop_price=38_000),
            )
        )
    )
    assert (oco.status_code, oco.code, oco.message) == (422, 42210000, "invalid order class for crypto order")
    bracket = api_error(
        lambda: trading.submit_order(
            crypto(
                0.1,
                order_class=OrderClass.BRACKET,
                take_profit=TakeProfitRequest(limit_price=44_000),
                stop_loss=StopLossRequest(stop_price=38_000),
            )
        )
    )
    assert (bracket.status_code, bracket.message) == (422, "invalid order class for crypto order")
    assert len(emu.orders) == 1


def test_crypto_stop_limit_sell_rests_then_fills_inside_its_band(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("BTC/USD", 40_000)
    trading.submit_order(crypto(1))
    stop = trading.submit_order(
        StopLimitOrderRequest(
            symbol="BTC/USD",
            qty=0.9975,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=38_000,
            limit_price=37_620,
        )
    )
    emu.set_price("BTC/USD", 38_500)
    assert trading.get_order_by_id(stop.id).status == OrderStatus.NEW
    emu.set_price("BTC/USD", 37_900)  # through the stop, above the limit: fills
    done = trading.get_order_by_id(stop.id)
    assert (done.status, done.filled_avg_price) == (OrderStatus.FILLED, "37900")
    assert emu.positions == {} and emu.fills[-1].liquidity == "taker"


def test_a_crypto_buy_pays_the_taker_fee_in_coins(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("BTC/USD", 60_000.5)
    trading.submit_order(crypto(1))
    assert emu.positions == {"BTC/USD": 0.9975}  # 25 bps of the bitcoin bought
    assert trading.get_open_position("BTCUSD").qty == "0.9975"
    assert emu.cash == pytest.approx(100_000 - 60_000.5)  # the dollars paid are the full price
    (fill,) = emu.fills
    assert (fill.qty, fill.fee, fill.liquidity, fill.position_qty) == (1, 0.0025, "taker", 0.9975)


def test_a_crypto_sell_pays_the_fee_in_dollars(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("BTC/USD", 40_000)
    trading.submit_order(crypto(2))  # 1.995 BTC held
    emu.set_price("BTC/USD", 41_234.57)
    trading.submit_order(crypto(1.995, OrderSide.SELL))
    proceeds = round(1.995 * 41_234.57, 2)  # 82,262.97
    fee = round(proceeds * 0.0025, 2)  # 205.66
    assert emu.positions == {}
    assert emu.cash == pytest.approx(100_000 - 80_000 + proceeds - fee, abs=1e-9)
    assert (emu.fills[-1].fee, emu.fills[-1].liquidity) == (fee, "taker")


def test_a_resting_crypto_limit_pays_the_maker_fee_and_a_marketable_one_the_taker_fee(
    alpaca_emulator, trading
):
    emu = alpaca_emulator
    emu.set_price("BTC/USD", 40_000)

    def limit(price: float) -> LimitOrderRequest:
        return LimitOrderRequest(
            symbol="BTC/USD", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=price
        )

    trading.submit_order(limit(39_000))
    emu.set_price("BTC/USD", 38_900)  # the resting bid is hit: it made liquidity
    trading.submit_order(limit(39_500))  # marketable on arrival: it took liquidity
    assert [(f.liquidity, f.fee) for f in emu.fills] == [("maker", 0.0015), ("taker", 0.0025)]
    assert emu.positions == {"BTC/USD": pytest.approx(0.9985 + 0.9975)}


def test_crypto_fees_are_a_knob(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_crypto_fees(maker_bps=0, taker_bps=10)
    emu.set_price("BTC/USD", 40_000)
    trading.submit_order(crypto(1))
    assert emu.positions == {"BTC/USD": 0.999}
    emu.set_crypto_fees(0, 0)
    trading.submit_order(crypto(0.999, OrderSide.SELL))
    assert emu.positions == {} and emu.cash == pytest.approx(100_000 - 40_000 + 39_960)


def test_stock_fills_pay_no_fee(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("AAPL", 100.01)
    trading.submit_order(market("AAPL", 3))
    assert emu.positions == {"AAPL": 3} and emu.cash == pytest.approx(100_000 - 300.03)
    assert (emu.fills[0].fee, emu.fills[0].liquidity) == (0.0, "")


def test_account_clock_calendar_asset(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_time(datetime(2024, 11, 29, 15, 0, tzinfo=UTC))  # 10:00 New York, the day after Thanksgiving
    clock = trading.get_clock()
    assert clock.is_open and clock.next_close.hour == 13  # a half day
    days = trading.get_calendar(GetCalendarRequest(start="2024-11-27", end="2024-12-02"))
    assert [d.date.isoformat() for d in days] == ["2024-11-27", "2024-11-29", "2024-12-02"]
    emu.add_asset("SPY", name="SPDR S&P 500", exchange="ARCA")
    asset = trading.get_asset("SPY")
    assert (asset.name, asset.exchange.value, asset.tradable) == ("SPDR S&P 500", "ARCA", True)
    assert trading.get_account().status.value == "ACTIVE"


# -- faults and auth ----------------------------------------------------------------------------


def test_429_is_retried_by_alpaca_py_then_succeeds(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.fail_next(1, status=429, path_prefix="/v2/account")
    started = time.monotonic()
    assert trading.get_account().cash == "100000"
    assert time.monotonic() - started >= 2.9  # alpaca-py waits 3 s before its retry
    assert [r.path for r in emu.requests] == ["/v2/account", "/v2/account"]


def test_5xx_surfaces_as_api_error(alpaca_emulator, trading, stock_data):
    emu = alpaca_emulator
    emu.set_price("AAPL", 100)
    emu.fail_next(1, status=500, path_prefix="/v2/orders")
    error = api_error(lambda: trading.submit_order(market("AAPL", 1)))
    assert (error.status_code, error.code, error.message) == (500, 50010000, "internal server error occurred")
    assert emu.orders == []  # the failure happened before the order was taken
    emu.fail_next(1, status=503, path_prefix="/v2/stocks")
    outage = api_error(
        lambda: stock_data.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAPL"))
    )
    assert outage.status_code == 503
    assert (
        stock_data.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAPL"))["AAPL"].price
        == 100
    )


def test_an_injected_failure_can_wait_for_earlier_requests_and_match_a_method(alpaca_emulator, trading):
    # A test fails a session's later requests (not its warm-up), or its order POSTs but not the
    # lookups under the same path prefix.
    emu = alpaca_emulator
    emu.set_price("AAPL", 100)
    emu.fail_next(1, status=500, path_prefix="/v2/orders", method="POST", skip=1)
    placed = trading.submit_order(market("AAPL", 1, client_order_id="first"))  # let through
    assert trading.get_order_by_client_id("first").id == placed.id  # a GET: not matched
    assert api_error(lambda: trading.submit_order(market("AAPL", 1))).status_code == 500
    assert trading.submit_order(market("AAPL", 1)).symbol == "AAPL"  # the failure was used up
    assert len(emu.orders) == 2


def test_slow_endpoint(alpaca_emulator, trading):
    alpaca_emulator.slow(0.3, path_prefix="/v2/clock")
    started = time.monotonic()
    trading.get_clock()
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("after", [False, True])
def test_stall_next_holds_one_request_before_or_after_booking_it(alpaca_emulator, trading, after):
    emu = alpaca_emulator
    emu.set_price("AAPL", 100)
    emu.stall_next(1, 0.6, "/v2/orders", method="POST", after=after)
    trading.get_orders()  # a GET under the same prefix is not held
    started = time.monotonic()
    worker = threading.Thread(target=trading.submit_order, args=(market("AAPL", 1, client_order_id="a"),))
    worker.start()
    wait_for(lambda: any(r.method == "POST" for r in emu.requests))
    # Held after handling: booked while the client still waits; held before: not booked yet.
    wait_for(lambda: len(emu.orders) == (1 if after else 0))
    assert worker.is_alive()
    worker.join(timeout=5)
    assert time.monotonic() - started >= 0.6 and len(emu.orders) == 1
    started = time.monotonic()
    trading.submit_order(market("AAPL", 1, client_order_id="b"))  # only the next one was held
    assert time.monotonic() - started < 0.6 and emu.faults.stalls_pending == 0


def test_wrong_trading_credentials(alpaca_emulator):
    client = TradingClient(alpaca_emulator.key_id, "not-the-secret", url_override=alpaca_emulator.trading_url)
    error = api_error(client.get_account)
    assert (error.status_code, error.code, error.message) == (401, 40110000, "request is not authorized")


# -- WebSockets ---------------------------------------------------------------------------------


@contextmanager
def running(stream, emu) -> Iterator[None]:
    """Run an alpaca-py stream in a thread; stop it (and end its socket) afterwards."""
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        deadline = time.monotonic() + 5
        while getattr(stream, "_loop", None) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        stream.stop()
        emu.drop_streams()  # alpaca-py only notices a stop between receives; this ends the wait
        thread.join(timeout=10)
        assert not thread.is_alive()


def wait_for(predicate, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def trade_stream(emu) -> tuple[TradingStream, list]:
    received: list = []
    stream = TradingStream(emu.key_id, emu.secret, url_override=emu.trade_stream_url)

    async def on_update(update) -> None:
        received.append(update)

    stream.subscribe_trade_updates(on_update)
    return stream, received


def test_trade_updates_stream_the_fill(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("AAPL", 100)
    stream, received = trade_stream(emu)
    with running(stream, emu):
        emu.wait_for_trade_listener()
        order = trading.submit_order(market("AAPL", 10))
        wait_for(lambda: len(received) == 2)
    new, fill = received
    assert (new.event, new.order.id, new.order.status) == ("new", order.id, OrderStatus.NEW)
    assert (fill.event, fill.order.status, fill.qty, fill.price, fill.position_qty) == (
        "fill",
        OrderStatus.FILLED,
        10,
        100,
        10,
    )
    assert str(fill.execution_id) == emu.fills[0].execution_id


def test_trade_updates_partial_cancel_reject_and_duplicates(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.set_price("AAPL", 100)
    emu.set_partial_fills(0.5)
    emu.duplicate_trade_updates(True)
    stream, received = trade_stream(emu)
    with running(stream, emu):
        emu.wait_for_trade_listener()
        order = trading.submit_order(market("AAPL", 10))
        trading.cancel_order_by_id(order.id)  # half filled: the rest is canceled
        emu.reject_next_orders(1)
        trading.submit_order(market("AAPL", 1))
        wait_for(lambda: len(received) == 8)
        time.sleep(0.1)  # nothing more arrives
    events = [u.event for u in received]
    assert events == [
        "new",
        "new",
        "partial_fill",
        "partial_fill",
        "canceled",
        "canceled",
        "rejected",
        "rejected",
    ]
    partial = received[2]
    assert (partial.qty, partial.position_qty, partial.order.status) == (5, 5, OrderStatus.PARTIALLY_FILLED)
    assert received[2].execution_id == received[3].execution_id  # a duplicate, not a second fill
    assert received[6].order.status == OrderStatus.REJECTED
    assert len(emu.fills) == 1 and emu.positions == {"AAPL": 5}


def test_market_data_stream_receives_pushed_bar_and_survives_a_drop(alpaca_emulator):
    emu = alpaca_emulator
    bars, trades = [], []
    stream = StockDataStream(emu.key_id, emu.secret, url_override=emu.data_stream_url)

    async def on_bar(bar) -> None:
        bars.append(bar)

    async def on_trade(trade) -> None:
        trades.append(trade)

    stream.subscribe_bars(on_bar, "AAPL")
    stream.subscribe_trades(on_trade, "*")
    with running(stream, emu):
        emu.wait_for_subscription("AAPL", "bars")
        emu.push_bar("AAPL", 10, 11, 9.5, 10.5, 1200, ts=T0)
        emu.push_bar("MSFT", 1, 1, 1, 1, 1, ts=T0)  # nobody subscribed
        emu.set_price("AAPL", 10.75, size=30)
        wait_for(lambda: bars and trades)
        (bar,) = bars
        assert (bar.symbol, bar.timestamp, bar.open, bar.close, bar.volume) == ("AAPL", T0, 10, 10.5, 1200)
        assert (trades[0].symbol, trades[0].price, trades[0].size) == ("AAPL", 10.75, 30)

        emu.drop_streams()  # the client reconnects, re-authenticates and re-subscribes
        wait_for(lambda: emu.stream_connections["data"] == 2)
        emu.wait_for_subscription("AAPL", "bars")
        emu.push_bar("AAPL", 11, 12, 10, 11.5, 900, ts=T0 + timedelta(minutes=1))
        wait_for(lambda: len(bars) == 2)
    assert bars[1].close == 11.5
    latest = emu.market.latest_bar("AAPL")
    assert latest is not None and latest.c == 11.5


def test_crypto_stream_bars(alpaca_emulator):
    emu = alpaca_emulator
    bars = []
    stream = CryptoDataStream(emu.key_id, emu.secret, url_override=emu.crypto_stream_url)

    async def on_bar(bar) -> None:
        bars.append(bar)

    stream.subscribe_bars(on_bar, "BTC/USD")
    with running(stream, emu):
        emu.wait_for_subscription("BTC/USD")
        emu.push_bar("AAPL", 1, 1, 1, 1)  # a stock bar never reaches the crypto stream
        emu.push_bar("BTC/USD", 42_000, 42_100, 41_900, 42_050, 3.5)
        wait_for(lambda: bars)
    assert [(b.symbol, b.close) for b in bars] == [("BTC/USD", 42_050)]


def test_streams_refuse_wrong_credentials(alpaca_emulator, caplog):
    emu = alpaca_emulator
    stream = StockDataStream(emu.key_id, "wrong", url_override=emu.data_stream_url)

    async def on_bar(bar) -> None:
        pass

    stream.subscribe_bars(on_bar, "AAPL")
    with caplog.at_level(logging.ERROR, logger="alpaca"), running(stream, emu):
        wait_for(lambda: any("auth failed" in r.getMessage() for r in caplog.records))
    assert not emu.streams.data_subscribed("bars", "AAPL")


def test_a_long_buy_while_a_short_sell_order_is_open_is_refused(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.allow_shorting = True
    emu.set_price("AAPL", 100)
    short = LimitOrderRequest(
        symbol="AAPL", qty=5, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, limit_price=110
    )
    trading.submit_order(short)  # rests: the price is below its limit
    refused = api_error(lambda: trading.submit_order(market("AAPL", 5)))
    assert (refused.status_code, refused.code) == (403, 40310000)
    assert refused.message == "cannot open a long buy while a short sell order is open"
    assert len(emu.orders) == 1 and emu.positions == {}


def test_a_short_sale_opens_a_negative_position_on_the_short_side(alpaca_emulator, trading):
    emu = alpaca_emulator
    emu.allow_shorting = True
    emu.set_price("AAPL", 100)
    trading.submit_order(market("AAPL", 5, OrderSide.SELL))
    position = trading.get_open_position("AAPL")
    assert (position.qty, position.side.value) == ("-5", "short")
    assert emu.positions == {"AAPL": -5.0}
