"""The Alpaca emulator, exercised only through the real alpaca-py clients (url_override)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient
from alpaca.data.requests import (
    CryptoBarsRequest,
    CryptoLatestTradeRequest,
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)  # 09:30 New York


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
