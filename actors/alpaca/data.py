"""`tape data fetch`: historical bars from Alpaca through alpaca-py, cached in the market-data store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from tape.actors.alpaca.http import with_timeouts
from tape.events.bars import find_bad_bar
from tape.events.errors import ConfigError, DataError, DataUnreachable, TapeError
from tape.store.credentials import AlpacaCredentials
from tape.store.market import BarFrame, DatasetInfo, store_bars

TIMEFRAMES = ("1Day", "1Hour", "5Min", "1Min")


def alpaca_timeframe(text: str):  # type: ignore[no-untyped-def]
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    table = {
        "1Day": TimeFrame(1, TimeFrameUnit.Day),
        "1Hour": TimeFrame(1, TimeFrameUnit.Hour),
        "5Min": TimeFrame(5, TimeFrameUnit.Minute),
        "1Min": TimeFrame(1, TimeFrameUnit.Minute),
    }
    if text not in table:
        raise ConfigError(f"unknown timeframe {text!r} for fetch (use one of {', '.join(TIMEFRAMES)})")
    return table[text]


def fetch_bars(
    symbol: str,
    *,
    days_back: int,
    timeframe: str,
    data_path: Path,
    credentials: AlpacaCredentials,
    now_ns: int,
) -> DatasetInfo:
    """Download ``days_back`` days of bars (alpaca-py follows the pages), validate them and merge them
    into the cache. Crypto pairs contain a slash (BTC/USD); stocks use the IEX feed."""
    from alpaca.common.exceptions import APIError
    from alpaca.data.enums import DataFeed
    from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient
    from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest

    if days_back < 1:
        raise ConfigError("--days-back must be at least 1")
    symbol = symbol.strip().upper()
    frame_kind = alpaca_timeframe(timeframe)
    end = dt.datetime.fromtimestamp(now_ns / 1e9, tz=dt.UTC)
    start = end - dt.timedelta(days=days_back)
    keys = {"api_key": credentials.api_key, "secret_key": credentials.secret_key}
    try:
        if "/" in symbol:
            crypto = CryptoHistoricalDataClient(**keys, url_override=credentials.data_url)
            with_timeouts(crypto, credentials.timeout_seconds)
            barset = crypto.get_crypto_bars(
                CryptoBarsRequest(symbol_or_symbols=symbol, timeframe=frame_kind, start=start, end=end)
            )
        else:
            stocks = StockHistoricalDataClient(**keys, url_override=credentials.data_url)
            with_timeouts(stocks, credentials.timeout_seconds)
            barset = stocks.get_stock_bars(
                StockBarsRequest(
                    symbol_or_symbols=symbol, timeframe=frame_kind, start=start, end=end, feed=DataFeed.IEX
                )
            )
    except (APIError, OSError) as exc:
        raise data_api_error(exc, f"Alpaca data request for {symbol}") from None
    bars = barset.data.get(symbol, [])
    if not bars:
        raise DataError(f"Alpaca returned no {timeframe} bars for {symbol} in the last {days_back} days")
    ts = np.array([int(b.timestamp.timestamp() * 1_000_000) * 1000 for b in bars], dtype=np.int64)
    cols = {
        name: np.array([float(getattr(b, name)) for b in bars], dtype=np.float64)
        for name in ("open", "high", "low", "close", "volume")
    }
    order = np.argsort(ts, kind="stable")
    frame = BarFrame(ts=ts[order], **{k: v[order] for k, v in cols.items()}, adj_close=None, source="alpaca")
    problem = find_bad_bar(frame.ts, frame.open, frame.high, frame.low, frame.close, frame.volume)
    if problem is not None:
        row, why = problem
        raise DataError(f"Alpaca bar {row} of {symbol} {why}; nothing stored")
    return store_bars(data_path, symbol, timeframe, frame, replace=False)


def data_api_error(exc: Exception, what: str) -> TapeError:
    """The one-line error for a failed data request: rejected credentials name the variables (never
    their values); other HTTP errors and unreachable hosts say what failed."""
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return ConfigError("Alpaca rejected the credentials (check ALPACA_API_KEY and ALPACA_API_SECRET)")
    if isinstance(exc, OSError):  # connection refused, DNS, timeouts
        return DataUnreachable(f"cannot reach Alpaca's data API: {type(exc).__name__}")
    return DataError(f"{what} failed (HTTP {status}): {_message(exc)}")


def _message(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "…"
