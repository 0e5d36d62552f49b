"""The market-data REST API (data.alpaca.markets): stock and crypto bars, latest trade/quote/bar.

Paths and response shapes are those alpaca-py 0.44's `StockHistoricalDataClient` and
`CryptoHistoricalDataClient` call and parse:

    GET /v2/stocks/bars?symbols=A,B            {"bars": {"A": [...]}, "next_page_token": ...}
    GET /v2/stocks/{symbol}/bars               {"bars": [...], "symbol": "A", "next_page_token": ...}
    GET /v2/stocks/{trades|quotes|bars}/latest {"trades": {"A": {...}}} (symbols without data omitted)
    GET /v2/stocks/{symbol}/{trades|quotes|bars}/latest   {"symbol": "A", "trade": {...}}
    GET /v1beta3/crypto/us/bars                like the multi-symbol stock bars
    GET /v1beta3/crypto/us/latest/{trades|quotes|bars}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .bars import BadPageToken, PageCursor, aggregate, paginate
from .errors import data_error
from .http_server import JsonApi, Request
from .market import Market
from .timeutil import CHICAGO, NEW_YORK, TimeFrame, now, parse_rfc3339

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


class MarketDataApi:
    def __init__(self, api: JsonApi, market: Market) -> None:
        self._market = market
        #: Most bars one page holds, whatever `limit` asks; Alpaca may return fewer bars than `limit`
        #: (clients must follow `next_page_token`), and tests lower this to force paging.
        self.page_size_cap = MAX_LIMIT
        api.route("GET", "/v2/stocks/bars", self._stock_bars)
        api.route("GET", "/v2/stocks/bars/latest", lambda r: self._latest(r, "bars", crypto=False))
        api.route("GET", "/v2/stocks/trades/latest", lambda r: self._latest(r, "trades", crypto=False))
        api.route("GET", "/v2/stocks/quotes/latest", lambda r: self._latest(r, "quotes", crypto=False))
        api.route("GET", "/v2/stocks/{symbol}/bars", self._single_stock_bars)
        api.route("GET", "/v2/stocks/{symbol}/bars/latest", lambda r: self._latest_single(r, "bar"))
        api.route("GET", "/v2/stocks/{symbol}/trades/latest", lambda r: self._latest_single(r, "trade"))
        api.route("GET", "/v2/stocks/{symbol}/quotes/latest", lambda r: self._latest_single(r, "quote"))
        api.route("GET", "/v1beta3/crypto/{loc}/bars", self._crypto_bars)
        for kind in ("bars", "trades", "quotes"):
            api.route(
                "GET",
                f"/v1beta3/crypto/{{loc}}/latest/{kind}",
                lambda r, kind=kind: self._latest(r, kind, crypto=True),
            )

    # -- bars -------------------------------------------------------------------------------------
    def _stock_bars(self, request: Request) -> tuple[int, Any]:
        return 200, self._bars_page(request, _symbols(request), NEW_YORK) | {"currency": "USD"}

    def _crypto_bars(self, request: Request) -> tuple[int, Any]:
        return 200, self._bars_page(request, _symbols(request), CHICAGO)

    def _single_stock_bars(self, request: Request) -> tuple[int, Any]:
        symbol = request.params["symbol"]
        page = self._bars_page(request, [symbol], NEW_YORK)
        return 200, {
            "bars": page["bars"].get(symbol, []),
            "symbol": symbol,
            "next_page_token": page["next_page_token"],
            "currency": "USD",
        }

    def _bars_page(self, request: Request, symbols: list[str], day_zone: Any) -> dict[str, Any]:
        try:
            timeframe = TimeFrame.parse(request.arg("timeframe", ""))
        except ValueError:
            raise data_error(400, "invalid timeframe") from None
        start = _time_arg(request, "start") or _start_of_today()
        end = _time_arg(request, "end") or now()
        if end < start:
            raise data_error(400, "end should not be before start")
        limit = _limit(request)
        sort = request.arg("sort", "asc")
        if sort not in ("asc", "desc"):
            raise data_error(400, "invalid sort")
        cursor = None
        token = request.arg("page_token")
        if token:
            try:
                cursor = PageCursor.decode(token)
            except BadPageToken:
                raise data_error(400, "invalid page token") from None
        series = {}
        for symbol in symbols:
            bars = aggregate(self._market.bars(symbol), timeframe, day_zone)
            bars = [bar for bar in bars if start <= bar.t <= end]
            if bars:
                series[symbol] = bars
        page = paginate(series, min(limit, self.page_size_cap), cursor, descending=sort == "desc")
        return {
            "bars": {symbol: [bar.wire() for bar in bars] for symbol, bars in page.bars.items()},
            "next_page_token": page.next_cursor.encode(timeframe) if page.next_cursor else None,
        }

    # -- latest -----------------------------------------------------------------------------------
    def _latest(self, request: Request, kind: str, crypto: bool) -> tuple[int, Any]:
        found = {}
        for symbol in _symbols(request):
            record = self._latest_record(symbol, kind, crypto)
            if record is not None:
                found[symbol] = record
        return 200, {kind: found}

    def _latest_single(self, request: Request, kind: str) -> tuple[int, Any]:
        symbol = request.params["symbol"]
        record = self._latest_record(symbol, kind + "s", crypto=False)
        if record is None:
            raise data_error(404, f"no {kind} found for {symbol}")
        return 200, {"symbol": symbol, kind: record}

    def _latest_record(self, symbol: str, kind: str, crypto: bool) -> dict[str, Any] | None:
        if kind == "bars":
            bar = self._market.latest_bar(symbol)
            return bar.wire() if bar else None
        record = self._market.latest_trade(symbol) if kind == "trades" else self._market.latest_quote(symbol)
        return record.wire(crypto) if record else None


def _symbols(request: Request) -> list[str]:
    raw = request.arg("symbols")
    if not raw:
        raise data_error(400, "missing symbols")
    return [s.strip() for s in raw.split(",") if s.strip()]


def _time_arg(request: Request, name: str) -> datetime | None:
    raw = request.arg(name)
    if raw is None:
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError:
        raise data_error(400, f"invalid {name}") from None


def _limit(request: Request) -> int:
    raw = request.arg("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise data_error(400, "invalid limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise data_error(400, f"invalid limit: must be between 1 and {MAX_LIMIT}")
    return limit


def _start_of_today() -> datetime:
    """Alpaca's default `start`: the beginning of the current day (New York)."""
    local = now().astimezone(NEW_YORK)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)
