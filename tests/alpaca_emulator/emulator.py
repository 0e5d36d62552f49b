"""`AlpacaEmulator`: Alpaca's REST and WebSocket APIs on 127.0.0.1, for tests that drive the real
alpaca-py clients through `url_override`::

    with AlpacaEmulator() as emu:
        emu.add_bars("AAPL", rows)
        emu.set_price("AAPL", 187.25)
        data = StockHistoricalDataClient(emu.key_id, emu.secret, url_override=emu.data_url)
        trading = TradingClient(emu.key_id, emu.secret, url_override=emu.trading_url)
        stream = StockDataStream(emu.key_id, emu.secret, url_override=emu.data_stream_url)
        updates = TradingStream(emu.key_id, emu.secret, url_override=emu.trade_stream_url)

This class is the test-facing facade; the pieces live in their own modules (market data, broker,
HTTP and WebSocket servers, faults).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any

from .assets import AssetBook
from .auth import Credentials
from .broker import Broker, Fill
from .data_api import MarketDataApi
from .faults import Faults
from .http_server import HttpServer, JsonApi, RequestRecord
from .market import Bar, Market, is_crypto, rows_to_bars
from .streams import Streams
from .timeutil import now, to_utc
from .trading_api import TradingApi


class AlpacaEmulator:
    def __init__(self, key_id: str | None = None, secret: str | None = None, cash: float = 100_000) -> None:
        self.key_id = key_id or "PK" + secrets.token_hex(9).upper()
        self.secret = secret or secrets.token_urlsafe(30)
        self._credentials = Credentials(self.key_id, self.secret)
        self._frozen_time: datetime | None = None
        self.market = Market()
        self.faults = Faults()
        #: Every REST request received, in order (api, method, path, query).
        self.requests: list[RequestRecord] = []

        self.assets = AssetBook(self.market.symbols)
        self.broker = Broker(self.market, self.assets, Decimal(str(cash)), self.now)
        self.streams = Streams(self._credentials)
        self.broker.listeners.append(self.streams.publish_trade_update)

        data = JsonApi("data", self.faults, self.requests, with_codes=False)
        data.authenticate = self._credentials.check_data
        self.data_api = MarketDataApi(data, self.market)
        trading = JsonApi("trading", self.faults, self.requests, with_codes=True)
        trading.authenticate = self._credentials.check_trading
        self.trading_api = TradingApi(trading, self.broker, self.assets, self.now)
        self._apis = (data, trading)
        self._data_server = HttpServer(data)
        self._trading_server = HttpServer(trading)
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> AlpacaEmulator:
        if not self._started:
            self._data_server.start()
            self._trading_server.start()
            self.streams.hub.start()
            self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self.streams.hub.stop()
            self._trading_server.stop()
            self._data_server.stop()
            self._started = False

    def __enter__(self) -> AlpacaEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def internal_errors(self) -> list[str]:
        """Tracebacks of emulator bugs hit while serving REST requests (each answered with a 500)."""
        return [error for api in self._apis for error in api.internal_errors]

    # -- addresses (pass as alpaca-py's url_override) ---------------------------------------------
    @property
    def trading_url(self) -> str:
        return self._trading_server.url

    @property
    def data_url(self) -> str:
        return self._data_server.url

    @property
    def stream_base_url(self) -> str:
        return f"ws://127.0.0.1:{self.streams.hub.port}"

    @property
    def data_stream_url(self) -> str:
        """The stock stream endpoint (`StockDataStream(url_override=...)` takes the full URL)."""
        return self.stream_base_url + "/v2/iex"

    @property
    def crypto_stream_url(self) -> str:
        return self.stream_base_url + "/v1beta3/crypto/us"

    @property
    def trade_stream_url(self) -> str:
        return self.stream_base_url + "/stream"

    # -- time -------------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self._frozen_time or now()

    def set_time(self, when: Any | None) -> None:
        """Freeze the emulator's clock (orders' timestamps, `/v2/clock`); None follows real time. Day
        orders of stocks whose session has closed by then expire, as at Alpaca."""
        self._frozen_time = to_utc(when) if when is not None else None
        self.broker.expire_day_orders(self.now())

    # -- market data ------------------------------------------------------------------------------
    def add_bars(self, symbol: str, rows: Any) -> None:
        """Seed bars: tuples `(ts, o, h, l, c, v[, n, vw])`, dicts, or a pandas DataFrame."""
        self.market.add_bars(symbol, rows_to_bars(rows))

    def add_trade(self, symbol: str, price: float, size: float = 100, ts: Any | None = None) -> None:
        """Record a trade for the latest-trade endpoints, without moving orders or the streams."""
        self.market.record_trade(symbol, price, size, to_utc(ts) if ts is not None else self.now())

    def set_quote(
        self, symbol: str, bid: float, ask: float, bid_size: float = 1, ask_size: float = 1
    ) -> None:
        quote = self.market.set_quote(symbol, bid, ask, bid_size, ask_size, self.now())
        message = {"T": "q", "S": symbol, "t": quote.t, **_quote_fields(quote.wire(is_crypto(symbol)))}
        self.streams.publish_market(message, is_crypto(symbol))

    def set_price(self, symbol: str, price: float, size: float = 100) -> None:
        """A trade at `price`: the symbol's current price. Market orders fill at it, resting orders it
        crosses execute, and trade subscribers on the data stream receive it."""
        trade = self.market.record_trade(symbol, price, size, self.now())
        crypto = is_crypto(symbol)
        self.streams.publish_market({"T": "t", "S": symbol, **_dated(trade.wire(crypto), trade.t)}, crypto)
        self.broker.on_price(symbol)

    def play_bar(self, symbol: str, o: float, h: float, l: float, c: float) -> None:  # noqa: E741
        """Trade through one bar: the open is a print (a gap from the last price: resting orders it
        crosses execute at it), then the market moves continuously to the nearer extreme (the low of a
        bar that closes up, the high of one that closes down), the other one and the close, so a resting
        order crossed on the way executes at its own level, as at a venue whose trades pass through it."""
        self.set_price(symbol, o)
        path = (l, h, c) if c >= o else (h, l, c)
        for price in path:
            trade = self.market.record_trade(symbol, price, 100, self.now())
            crypto = is_crypto(symbol)
            message = {"T": "t", "S": symbol, **_dated(trade.wire(crypto), trade.t)}
            self.streams.publish_market(message, crypto)
            self.broker.on_price(symbol, continuous=True)

    def push_bar(
        self,
        symbol: str,
        o: float,
        h: float,
        l: float,  # noqa: E741 (Alpaca's field name)
        c: float,
        v: float = 0,
        ts: Any | None = None,
        n: int = 1,
        vw: float | None = None,
    ) -> None:
        """A new minute bar: stored (latest-bar and bars endpoints see it) and streamed to bar
        subscribers. It does not move the current price (`set_price` does)."""
        t = to_utc(ts) if ts is not None else self.now().replace(second=0, microsecond=0)
        bar = Bar(t=t, o=o, h=h, l=l, c=c, v=v, n=n, vw=vw if vw is not None else round((h + l + c) / 3, 6))
        self.market.add_bars(symbol, [bar])
        message = {"T": "b", "S": symbol, **_dated(bar.wire(), t)}
        self.streams.publish_market(message, is_crypto(symbol))

    def push_updated_bar(
        self,
        symbol: str,
        o: float,
        h: float,
        l: float,  # noqa: E741 (Alpaca's field name)
        c: float,
        v: float = 0,
        ts: Any | None = None,
        n: int = 1,
        vw: float | None = None,
    ) -> None:
        """A correction of a minute bar already sent (late trades): it replaces the stored bar and goes
        to `updatedBars` subscribers as a `T: "u"` message (alpaca-py dispatches it to the handlers of
        `subscribe_updated_bars`). It does not move the current price."""
        t = to_utc(ts) if ts is not None else self.now().replace(second=0, microsecond=0)
        bar = Bar(t=t, o=o, h=h, l=l, c=c, v=v, n=n, vw=vw if vw is not None else round((h + l + c) / 3, 6))
        self.market.add_bars(symbol, [bar])
        self.streams.publish_market({"T": "u", "S": symbol, **_dated(bar.wire(), t)}, is_crypto(symbol))

    def set_page_size_cap(self, n: int) -> None:
        """Serve at most `n` bars per page whatever `limit` asks (Alpaca may return fewer than `limit`)."""
        self.data_api.page_size_cap = n

    # -- broker configuration ---------------------------------------------------------------------
    def add_asset(self, symbol: str, **attributes: Any) -> None:
        """Register an asset (name, exchange, status, tradable, shortable, fractionable)."""
        self.assets.add(symbol, **attributes)

    def set_cash(self, amount: float) -> None:
        with self.broker.lock:
            self.broker.portfolio.cash = Decimal(str(amount))

    def set_partial_fills(self, fraction: float | None, client_order_id: str | None = None) -> None:
        """Each execution fills at most `fraction` of an order's quantity; the rest fills on later
        prices (`set_price`) or `match()`. Global, or for the order with `client_order_id`.
        None restores whole fills."""
        with self.broker.lock:
            if client_order_id is None:
                self.broker.partial_fraction = fraction
            else:
                self.broker.partial_by_client_id[client_order_id] = fraction
                for order in self.broker.orders.values():
                    if order.client_order_id == client_order_id:
                        order.partial_fraction = fraction

    def set_routing_delay(self, seconds: float) -> None:
        """Route each accepted order `seconds` after the POST answered it, instead of inside the POST:
        a market order is `accepted` until then and fills after (a real venue takes a moment, so a poll
        right after the submission finds it unfilled). 0 restores routing inside the POST."""
        with self.broker.lock:
            self.broker.routing_delay = max(0.0, seconds)

    def set_pending_new_delay(self, seconds: float) -> None:
        """Each routed order stays `pending_new` (routed, not yet accepted by the venue; trade event
        `pending_new`) for `seconds` before it is `new` and can fill. 0 (the default) skips the state."""
        with self.broker.lock:
            self.broker.pending_new_delay = max(0.0, seconds)

    def set_cancel_delay(self, seconds: float | None) -> None:
        """A cancel request is answered 204 at once but completes later, as Alpaca's do: the order is
        `pending_cancel` (trade event `pending_cancel`; it can still fill) for `seconds`, then
        `canceled`. None holds every cancel pending until `complete_pending_cancels()`, so a test
        decides how many cycles it lasts. 0 (the default) completes cancels inside the request."""
        with self.broker.lock:
            self.broker.cancel_delay = None if seconds is None else max(0.0, seconds)

    def complete_pending_cancels(self) -> int:
        """Complete every pending cancel now (see `set_cancel_delay`); returns how many there were."""
        return self.broker.complete_pending_cancels()

    @property
    def pending_cancels(self) -> list[str]:
        """Client order ids of the orders whose cancel is pending (see `set_cancel_delay`)."""
        with self.broker.lock:
            return [self.broker.orders[i].client_order_id for i in self.broker.pending_cancel_ids]

    def mark_done_for_day(self, client_order_id: str) -> None:
        """The venue is done with the open order `client_order_id` for the day: it (and its open legs)
        turns `done_for_day` (trade event `done_for_day`), is still listed under `status=open`, as
        Alpaca lists it, executes nothing more, and can still be canceled."""
        self.broker.done_for_day(client_order_id)

    def set_crypto_fees(self, maker_bps: float = 15, taker_bps: float = 25) -> None:
        """Crypto trading fees in basis points (default Alpaca's tier 1: 15 maker, 25 taker; 0 turns
        them off). They are taken from the credited asset, so they show in positions and cash."""
        with self.broker.lock:
            self.broker.crypto_maker_bps = Decimal(str(maker_bps))
            self.broker.crypto_taker_bps = Decimal(str(taker_bps))

    def reject_next_orders(self, n: int = 1) -> None:
        """The next `n` accepted orders are rejected by the venue (status and event `rejected`)."""
        with self.broker.lock:
            self.broker.reject_next += n

    def slip_next_fills(self, n: int, dollars: float) -> None:
        """The next `n` market executions are `dollars` a share worse than the market price (higher
        for a buy, lower for a sell): slippage of a known size."""
        with self.broker.fill_faults.lock:
            self.broker.fill_faults.slips += [Decimal(str(dollars))] * n

    def fill_next_late(self, n: int = 1) -> None:
        """The next `n` market orders do not execute on arrival but on the next price set after it
        (a session polling each cycle sees the fill a cycle late, at that later price)."""
        with self.broker.fill_faults.lock:
            self.broker.fill_faults.held += n

    def fill_before_next_cancel(self, fraction: float = 1.0) -> None:
        """The next cancel request loses a race: its order (an OCO: the stop leg) first executes
        `fraction` of what is left at its stop price (a limit order: its limit price). In full, the
        cancel is then refused as Alpaca refuses it (422, `order is already in "filled" state`, or
        "canceled" for an OCO whose stop leg filled); in part, the rest is canceled."""
        with self.broker.lock:
            self.broker.fill_before_cancel.append(fraction)

    def expire_next_market_part(self, fraction: float, side: str = "sell") -> None:
        """The next simple market order on `side` executes only `fraction` of its quantity on arrival
        (whole shares for stocks) and the venue then expires the rest: the order ends `expired`, part
        filled, as a day order does at the close or one cut short by a halt."""
        with self.broker.lock:
            self.broker.expire_after_part.append((side, fraction))

    def venue_ends(self, client_order_id: str, fraction: float = 0.5) -> None:
        """The open order `client_order_id` executes `fraction` of what is left at its stop price (an
        OCO: its stop leg) and the venue, not the client, then cancels the rest."""
        self.broker.venue_ends(client_order_id, fraction)

    @property
    def allow_shorting(self) -> bool:
        return self.broker.allow_shorting

    @allow_shorting.setter
    def allow_shorting(self, value: bool) -> None:
        self.broker.allow_shorting = value

    def match(self) -> None:
        """Give every working order another execution at the current prices."""
        self.broker.match_all()

    # -- books, for assertions --------------------------------------------------------------------
    @property
    def orders(self) -> list[dict[str, Any]]:
        """Every order and leg, in submission order, as Alpaca's JSON (legs also nested in parents)."""
        with self.broker.lock:
            return [order.wire() for order in self.broker.orders.values()]

    def order(self, order_id_or_client_id: str) -> dict[str, Any]:
        with self.broker.lock:
            for order in self.broker.orders.values():
                if order_id_or_client_id in (order.id, order.client_order_id):
                    return order.wire()
        raise KeyError(order_id_or_client_id)

    @property
    def positions(self) -> dict[str, float]:
        """Position quantity by symbol (negative when short)."""
        with self.broker.lock:
            return {symbol: float(p.qty) for symbol, p in self.broker.portfolio.positions.items()}

    @property
    def fills(self) -> list[Fill]:
        with self.broker.lock:
            return list(self.broker.fills)

    @property
    def cash(self) -> float:
        with self.broker.lock:
            return float(self.broker.portfolio.cash)

    @property
    def account(self) -> dict[str, Any]:
        return self.trading_api.account_wire()

    # -- streams ----------------------------------------------------------------------------------
    def wait_for_subscription(self, symbol: str, channel: str = "bars", timeout: float = 5) -> None:
        """Block until a data-stream client is subscribed to `channel` for `symbol` (or `*`)."""
        self.streams.wait_until(
            lambda: self.streams.data_subscribed(channel, symbol),
            timeout,
            f"a {channel} subscription to {symbol}",
        )

    def data_subscribed(self, symbol: str, channel: str = "bars") -> bool:
        """Whether a data-stream client is subscribed to `channel` for `symbol` (or `*`) right now."""
        return self.streams.data_subscribed(channel, symbol)

    def wait_for_trade_listener(self, timeout: float = 5) -> None:
        """Block until a trading-stream client listens to trade_updates."""
        self.streams.wait_until(self.streams.trade_listening, timeout, "a trade_updates listener")

    def drop_streams(self, abrupt: bool = False) -> None:
        """Close every WebSocket connection (clients see the connection end and reconnect)."""
        self.streams.hub.drop_all(abrupt)

    def duplicate_trade_updates(self, on: bool = True) -> None:
        """Send each trade update twice."""
        self.streams.duplicate_trade_updates = on

    def refuse_trade_stream(self, how: str | None = "auth") -> None:
        """Refuse new trading-stream connections: "auth" answers every login `unauthorized` and closes
        (as Alpaca answers wrong keys), "connect" answers the WebSocket handshake HTTP 503; None serves
        them again. Open connections stay (`drop_streams` ends them)."""
        if how not in ("auth", "connect", None):
            raise ValueError(f"refuse_trade_stream: auth, connect or None, not {how!r}")
        self.streams.trade_stream_refusal = how

    @property
    def stream_connections(self) -> dict[str, int]:
        """WebSocket connections opened so far, by stream kind (`data`, `trading`)."""
        return dict(self.streams.hub.connections_opened)

    # -- faults -----------------------------------------------------------------------------------
    def fail_next(
        self, n: int = 1, status: int = 500, path_prefix: str = "", method: str | None = None, skip: int = 0
    ) -> None:
        """The next `n` REST requests whose path starts with `path_prefix` (and whose method is
        `method`, e.g. "POST") answer `status` (with the error body that API uses), after the first
        `skip` of them are answered normally. alpaca-py retries 429 and 504, up to 3 times, 3 s apart."""
        self.faults.fail_next(n, status, path_prefix, method, skip)

    def fail_after_next(
        self,
        trigger_method: str,
        trigger_prefix: str,
        n: int = 1,
        status: int = 500,
        path_prefix: str = "",
        method: str | None = None,
    ) -> None:
        """Once the next `trigger_method` REST request under `trigger_prefix` has arrived (it is answered
        normally), the next `n` under `path_prefix` (and `method`) answer `status`: e.g. the reads of an
        order that fail right after its cancel (`fail_after_next("DELETE", "/v2/orders/", 5, 500,
        "/v2/orders:by_client_order_id", "GET")`)."""
        self.faults.fail_after_next(trigger_method, trigger_prefix, n, status, path_prefix, method)

    def slow(self, seconds: float, path_prefix: str = "") -> None:
        """Delay REST requests under `path_prefix` by `seconds` (0 turns it off)."""
        self.faults.slow(seconds, path_prefix)

    def stall_next(
        self, n: int, seconds: float, path_prefix: str = "", method: str | None = None, after: bool = False
    ) -> None:
        """Hold the next `n` REST requests under `path_prefix` (and `method`, e.g. "POST") for
        `seconds`, before handling them, or `after` handling them: the work is done (an order is
        booked) and only the answer is late, as when a response is lost on the way back."""
        self.faults.stall_next(n, seconds, path_prefix, method, after)

    def clear_faults(self) -> None:
        self.faults.clear()
        self.streams.duplicate_trade_updates = False
        self.streams.trade_stream_refusal = None


def _dated(fields: dict[str, Any], t: datetime) -> dict[str, Any]:
    """Stream messages carry a real timestamp (a msgpack Timestamp on the wire), not a string."""
    return {**fields, "t": t}


def _quote_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k != "t"}
