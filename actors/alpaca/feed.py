"""The live market-data feed: completed bars from Alpaca's historical REST API through alpaca-py.

Each scheduler cycle asks for the bars that *closed* since the last one (a bar still forming is never
handed to a strategy: no look-ahead, no repainting). Stocks read the IEX feed; crypto pairs (BTC/USD)
the crypto endpoint. The same request warms the strategies up with ``days_back`` days of history.
Every request has a connect and a read timeout (actors/alpaca/http.py): a hung server is a feed
outage like a 5xx, which the session alerts and back-fills at the next cycle.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from tape.actors.alpaca.data import alpaca_timeframe, data_api_error
from tape.actors.alpaca.http import harden
from tape.events.errors import DataError
from tape.events.timeframes import timeframe_ns
from tape.store.credentials import AlpacaCredentials


class LiveBar(NamedTuple):
    """One completed bar; ``ts`` is its start in ns UTC, as Alpaca stamps it."""

    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


def _utc(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)


class AlpacaBarFeed:
    """Completed bars of several symbols at one timeframe."""

    def __init__(
        self,
        credentials: AlpacaCredentials,
        timeframe: str,
        *,
        retry_wait_seconds: float = 1,
        timeout_seconds: float | None = None,
    ) -> None:
        """``timeout_seconds`` bounds each request (default: the credentials', else 10 s)."""
        self.timeframe = timeframe
        self._retry_wait = retry_wait_seconds
        self._frame = alpaca_timeframe(timeframe)
        self._bar_ns = timeframe_ns(timeframe)
        self._credentials = credentials
        self._timeout = timeout_seconds if timeout_seconds is not None else credentials.timeout_seconds
        self._clients: dict[str, Any] = {}

    def _client(self, kind: str) -> Any:
        if kind not in self._clients:
            from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient

            keys = {
                "api_key": self._credentials.api_key,
                "secret_key": self._credentials.secret_key,
                "url_override": self._credentials.data_url,
            }
            cls = CryptoHistoricalDataClient if kind == "crypto" else StockHistoricalDataClient
            # alpaca-py retries 429 and 504 after 3 s; a cycle cannot wait that long for one bar.
            client = harden(cls(**keys), timeout_seconds=self._timeout, retry_wait_seconds=self._retry_wait)
            self._clients[kind] = client
        return self._clients[kind]

    def completed(self, symbols: list[str], after_ns: int, now_ns: int) -> list[LiveBar]:
        """Bars that started after ``after_ns`` and closed by ``now_ns``, in (time, symbol) order."""
        if now_ns <= after_ns:
            return []
        crypto = [s for s in symbols if "/" in s]
        stocks = [s for s in symbols if "/" not in s]
        out: list[LiveBar] = []
        if stocks:
            out += self._request("stocks", stocks, after_ns, now_ns)
        if crypto:
            out += self._request("crypto", crypto, after_ns, now_ns)
        order = {s: k for k, s in enumerate(symbols)}
        out = [b for b in out if b.ts > after_ns and b.ts + self._bar_ns <= now_ns]
        out.sort(key=lambda b: (b.ts, order[b.symbol]))
        return out

    def get_latest_price(self, symbol: str) -> float:
        """The price of ``symbol``'s latest trade (IEX for stocks), over REST; a DataError naming the
        symbol when Alpaca has none (an unknown symbol)."""
        from alpaca.common.exceptions import APIError
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import CryptoLatestTradeRequest, StockLatestTradeRequest

        try:
            if "/" in symbol:
                trades = self._client("crypto").get_crypto_latest_trade(
                    CryptoLatestTradeRequest(symbol_or_symbols=symbol)
                )
            else:
                trades = self._client("stocks").get_stock_latest_trade(
                    StockLatestTradeRequest(symbol_or_symbols=symbol, feed=DataFeed.IEX)
                )
        except (APIError, OSError) as exc:
            raise data_api_error(exc, f"Alpaca latest trade of {symbol}") from None
        # Alpaca answers a symbol it has no trade for with 200 {"trades": {}}, and alpaca-py then
        # returns {} (alpaca-py tests/data/test_historical_stock_data.py::
        # test_get_latest_trade_multi_not_found): say so for that symbol rather than fail on a lookup.
        trade = trades.get(symbol) if isinstance(trades, dict) else None
        if trade is None:
            feed = "crypto" if "/" in symbol else "IEX"
            raise DataError(f"Alpaca has no latest trade for {symbol} on the {feed} feed (unknown symbol?)")
        return float(trade.price)

    def _request(self, kind: str, symbols: list[str], after_ns: int, now_ns: int) -> list[LiveBar]:
        from alpaca.common.exceptions import APIError
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest

        window = {"symbol_or_symbols": symbols, "timeframe": self._frame}
        window |= {"start": _utc(after_ns + 1), "end": _utc(now_ns)}
        try:
            if kind == "crypto":
                barset = self._client(kind).get_crypto_bars(CryptoBarsRequest(**window))
            else:
                barset = self._client(kind).get_stock_bars(StockBarsRequest(**window, feed=DataFeed.IEX))
        except (APIError, OSError) as exc:
            raise data_api_error(exc, "Alpaca bars request") from None
        return [
            LiveBar(
                symbol,
                int(b.timestamp.timestamp() * 1_000_000) * 1000,
                float(b.open),
                float(b.high),
                float(b.low),
                float(b.close),
                float(b.volume),
            )
            for symbol, bars in barset.data.items()
            for b in bars
        ]
