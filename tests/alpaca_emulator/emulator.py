"""`AlpacaEmulator`: Alpaca's REST APIs on 127.0.0.1, for tests driving the real alpaca-py clients::

with AlpacaEmulator() as emu:
    emu.add_bars("AAPL", rows)
    client = StockHistoricalDataClient(emu.key_id, emu.secret, url_override=emu.data_url)
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from .auth import Credentials
from .data_api import MarketDataApi
from .faults import Faults
from .http_server import HttpServer, JsonApi, RequestRecord
from .market import Market, rows_to_bars


class AlpacaEmulator:
    def __init__(self, key_id: str | None = None, secret: str | None = None) -> None:
        self.key_id = key_id or "PK" + secrets.token_hex(9).upper()
        self.secret = secret or secrets.token_urlsafe(30)
        self._credentials = Credentials(self.key_id, self.secret)
        self.market = Market()
        self.faults = Faults()
        #: Every REST request received, in order (api, method, path, query).
        self.requests: list[RequestRecord] = []

        data = JsonApi("data", self.faults, self.requests, with_codes=False)
        data.authenticate = self._credentials.check_data
        self.data_api = MarketDataApi(data, self.market)
        self._data_server = HttpServer(data)
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> AlpacaEmulator:
        if not self._started:
            self._data_server.start()
            self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._data_server.stop()
            self._started = False

    def __enter__(self) -> AlpacaEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def data_url(self) -> str:
        return self._data_server.url

    # -- market data ------------------------------------------------------------------------------
    def add_bars(self, symbol: str, rows: Any) -> None:
        """Seed bars: tuples `(ts, o, h, l, c, v[, n, vw])`, dicts, or a pandas DataFrame."""
        self.market.add_bars(symbol, rows_to_bars(rows))

    def set_quote(
        self, symbol: str, bid: float, ask: float, bid_size: float = 1, ask_size: float = 1
    ) -> None:
        self.market.set_quote(symbol, bid, ask, bid_size, ask_size)

    def add_trade(self, symbol: str, price: float, size: float = 100, ts: datetime | None = None) -> None:
        """Record a trade (the latest trade endpoints return it) without moving resting orders."""
        self.market.record_trade(symbol, price, size, ts)

    def set_page_size_cap(self, n: int) -> None:
        """Serve at most `n` bars per page whatever `limit` asks (Alpaca may return fewer than `limit`)."""
        self.data_api.page_size_cap = n

    # -- faults -----------------------------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 500, path_prefix: str = "") -> None:
        """The next `n` REST requests whose path starts with `path_prefix` answer `status`."""
        self.faults.fail_next(n, status, path_prefix)

    def slow(self, seconds: float, path_prefix: str = "") -> None:
        """Delay REST requests under `path_prefix` by `seconds` (0 turns it off)."""
        self.faults.slow(seconds, path_prefix)
