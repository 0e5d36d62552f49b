"""The streaming market-data feed: Alpaca's minute-bar WebSocket, with REST wherever it may have gaps.

alpaca-py's StockDataStream (IEX) and CryptoDataStream run in background threads and reconnect by
themselves. Their minute bars are kept in a buffer, and a cycle's completed bars are aggregated from it
into the session's timeframe, aligned the way Alpaca's REST bars are (UTC minutes and hours). The
buffer answers a window only when it provably holds all of it; otherwise the window is read over REST
(:class:`~actors.alpaca_feed.AlpacaBarFeed`), which is always correct, only slower:

- the connection must have been subscribed, without a drop or a reconnect, since before the window's
  first bar began (a *floor*, set at the first cycle that finds the connection up and current);
- every symbol's last minute of the window must have arrived (waited for up to ``settle_seconds``:
  Alpaca sends a minute's bar just after the minute ends). A mute connection, a drop the client has not
  noticed yet, or a symbol without trades in that minute all fall back to REST.

Bars are keyed by (symbol, minute), so a bar delivered twice counts once; a window only ever returns
bars that started after ``after_ns`` and closed by ``now_ns``, so nothing is handed over twice and a
bar still forming never is.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

from actors.alpaca_feed import AlpacaBarFeed, LiveBar
from events.timeframes import timeframe_ns
from store.credentials import AlpacaCredentials

MINUTE_NS = 60_000_000_000
HOUR_NS = 60 * MINUTE_NS
# Keep-alive pings find a dead TCP connection within ~20 s (alpaca-py's default waits 180 s for a pong).
WEBSOCKET_PARAMS = {"ping_interval": 10, "ping_timeout": 10, "max_queue": 1024}


class _Link:
    """One WebSocket (stocks or crypto), its thread, and what the feed knows of its connection.

    ``epoch`` counts subscriptions the server confirmed: a drop and reconnect always changes it."""

    def __init__(self, stream: Any, symbols: list[str], lock: threading.Condition) -> None:
        self.stream, self.symbols, self._cond = stream, symbols, lock
        self.up = False
        self.epoch = 0
        self.drops = 0
        self.newest_ns: int | None = None  # newest minute received on the current epoch
        self.floor: int | None = None  # windows starting at or after it are all in the buffer
        self.floor_epoch = -1
        self.thread = threading.Thread(target=stream.run, name="alpaca-bars", daemon=True)

    def subscribed(self, message: dict[str, Any]) -> None:
        with self._cond:
            if set(self.symbols) <= set(message.get("bars") or []):
                self.up, self.epoch, self.newest_ns = True, self.epoch + 1, None
                self._cond.notify_all()

    def down(self) -> None:
        with self._cond:
            if self.up:
                self.up, self.drops = False, self.drops + 1
                self._cond.notify_all()


def _tracked(base: type) -> type:
    """``base`` (an alpaca-py data stream) telling its :class:`_Link` when it subscribes and closes."""

    class Tracked(base):  # type: ignore[misc, valid-type]
        link: _Link

        async def _dispatch(self, msg: dict[str, Any]) -> None:
            if msg.get("T") == "subscription":
                self.link.subscribed(msg)
            await super()._dispatch(msg)

        async def close(self) -> None:
            self.link.down()  # every lost or ended connection passes here before a reconnect
            await super().close()

    return Tracked


class StreamingBarFeed:
    """Completed bars from the minute-bar streams, back-filled over REST (the Feed protocol)."""

    def __init__(
        self,
        credentials: AlpacaCredentials,
        timeframe: str,
        *,
        rest: AlpacaBarFeed | None = None,
        settle_seconds: float = 5.0,
        retry_wait_seconds: float = 1,
    ) -> None:
        """``rest`` reads what the stream cannot vouch for (by default an AlpacaBarFeed on the same
        credentials); ``settle_seconds`` is how long a cycle waits for a window's last minute."""
        self.timeframe = timeframe
        self.rest = rest or AlpacaBarFeed(credentials, timeframe, retry_wait_seconds=retry_wait_seconds)
        self._credentials = credentials
        self._bar_ns = timeframe_ns(timeframe)
        # Minute and hour bars align to UTC like Alpaca's; daily bars (New York midnight) stay on REST.
        self._streamable = self._bar_ns <= HOUR_NS and HOUR_NS % self._bar_ns == 0
        self._settle = settle_seconds
        self._cond = threading.Condition()
        self._minutes: dict[tuple[str, int], LiveBar] = {}
        self._links: dict[str, _Link] = {}
        self.windows = {"stream": 0, "rest": 0}  # windows answered by each source, for status and tests

    # ------------------------------------------------------------------ the Feed protocol

    def completed(self, symbols: list[str], after_ns: int, now_ns: int) -> list[LiveBar]:
        """Bars that started after ``after_ns`` and closed by ``now_ns``, in (time, symbol) order."""
        if now_ns <= after_ns:
            return []
        if not self._streamable:
            return self.rest.completed(symbols, after_ns, now_ns)
        bar = self._bar_ns
        first = (after_ns // bar + 1) * bar  # the first bar start after after_ns
        last = now_ns // bar * bar - bar  # the newest bar that has closed
        if last < first:
            return []
        self._start(symbols)
        out: list[LiveBar] = []
        for kind, group in _by_kind(symbols).items():
            link = self._links.get(kind)
            if (
                link is not None
                and set(group) <= set(link.symbols)
                and self._covers(link, first, last, now_ns)
            ):
                out += self._aggregate(group, first, last)
                self.windows["stream"] += 1
            else:
                out += self.rest.completed(group, after_ns, now_ns)
                self.windows["rest"] += 1
        self._prune(first)
        order = {s: k for k, s in enumerate(symbols)}
        out.sort(key=lambda b: (b.ts, order[b.symbol]))
        return out

    def get_latest_price(self, symbol: str) -> float:
        """The price of ``symbol``'s latest trade, over REST."""
        return self.rest.get_latest_price(symbol)

    @property
    def drops(self) -> int:
        """Connections lost (or closed) after they had subscribed, over all streams."""
        return sum(link.drops for link in self._links.values())

    @property
    def connected(self) -> bool:
        """Every stream is subscribed right now."""
        return bool(self._links) and all(link.up for link in self._links.values())

    def close(self) -> None:
        """Stop the streams and their threads."""
        for link in self._links.values():
            stream = link.stream
            deadline = time.monotonic() + 5
            while getattr(stream, "_loop", None) is None and time.monotonic() < deadline:
                time.sleep(0.01)  # a stop sent before the stream's loop runs would be forgotten
            loop = stream._loop
            if loop is not None and loop.is_running():
                stream.stop()
                # alpaca-py notices a stop only between receives: closing the socket ends the wait.
                # The stop may already have ended the loop (a reconnect in flight notices it at once):
                # a closed loop means the stream is down, which is what close() wants.
                with contextlib.suppress(RuntimeError):
                    asyncio.run_coroutine_threadsafe(stream.close(), loop)
            link.thread.join(timeout=10)
        self._links.clear()

    # ------------------------------------------------------------------ streams

    def _start(self, symbols: list[str]) -> None:
        for kind, group in _by_kind(symbols).items():
            if kind not in self._links:
                link = _Link(self._make_stream(kind), sorted(group), self._cond)
                link.stream.link = link
                handler = self._on_bar
                link.stream.subscribe_bars(handler, *link.symbols)
                link.stream.subscribe_updated_bars(handler, *link.symbols)  # late trades amend a minute
                self._links[kind] = link
                link.thread.start()

    def _make_stream(self, kind: str) -> Any:
        from alpaca.data.enums import DataFeed
        from alpaca.data.live import CryptoDataStream, StockDataStream

        keys: dict[str, Any] = {
            "api_key": self._credentials.api_key,
            "secret_key": self._credentials.secret_key,
        }
        keys |= {"raw_data": True, "websocket_params": dict(WEBSOCKET_PARAMS)}
        base = self._credentials.stream_url
        if kind == "crypto":
            url = None if base is None else base + "/v1beta3/crypto/us"
            return _tracked(CryptoDataStream)(**keys, url_override=url)
        url = None if base is None else base + "/v2/iex"
        return _tracked(StockDataStream)(**keys, feed=DataFeed.IEX, url_override=url)

    async def _on_bar(self, msg: dict[str, Any]) -> None:
        stamp = msg["t"]
        ts = stamp.to_unix_nano() if hasattr(stamp, "to_unix_nano") else _rfc3339_ns(str(stamp))
        symbol = msg["S"]
        minute = LiveBar(
            symbol, ts, float(msg["o"]), float(msg["h"]), float(msg["l"]), float(msg["c"]), float(msg["v"])
        )
        with self._cond:
            self._minutes[(symbol, ts)] = minute
            link = self._links.get("crypto" if "/" in symbol else "stocks")
            if link is not None and link.up:
                link.newest_ns = max(link.newest_ns or ts, ts)
            self._cond.notify_all()

    # ------------------------------------------------------------------ windows

    def _covers(self, link: _Link, first: int, last: int, now_ns: int) -> bool:
        """Whether the buffer holds every minute of the bars ``first``..``last`` for ``link``'s
        symbols: connected since before ``first`` and each symbol's final minute arrived."""
        final = last + self._bar_ns - MINUTE_NS
        with self._cond:
            if not link.up:
                link.floor = None
                return False
            if link.floor_epoch != link.epoch:  # a new connection: it has seen nothing before now
                link.floor, link.floor_epoch = None, link.epoch
            if link.floor is None:
                # Only a call at the present may set the floor: a warm-up or audit call asks about the
                # past, and the stream's newest minute tells the present from the past.
                if link.newest_ns is not None and now_ns >= link.newest_ns + MINUTE_NS:
                    link.floor = now_ns
                return False
            if link.floor > first:
                return False
            epoch = link.epoch
            deadline = time.monotonic() + self._settle
            while not all((s, final) in self._minutes for s in link.symbols):
                left = deadline - time.monotonic()
                if left <= 0 or not link.up or link.epoch != epoch:
                    return False
                self._cond.wait(left)
            return link.up and link.epoch == epoch

    def _aggregate(self, symbols: list[str], first: int, last: int) -> list[LiveBar]:
        """The buffer's minutes of ``symbols`` in bars ``first``..``last``, merged like Alpaca's REST
        bars: open of the first minute, highest high, lowest low, close of the last, summed volume."""
        bar, out = self._bar_ns, []
        end = last + bar
        with self._cond:
            minutes = sorted(
                (m for (s, ts), m in self._minutes.items() if first <= ts < end and s in symbols),
                key=lambda m: (m.symbol, m.ts),
            )
        group: list[LiveBar] = []
        for minute in minutes:
            if group and (minute.symbol != group[0].symbol or minute.ts // bar != group[0].ts // bar):
                out.append(_merge(group, bar))
                group = []
            group.append(minute)
        if group:
            out.append(_merge(group, bar))
        return out

    def _prune(self, first: int) -> None:
        """Forget minutes before ``first``: the session's cursor only moves forward, so later windows
        start after it (an older window is read over REST, since the floor moves up with the prune)."""
        with self._cond:
            for key in [k for k in self._minutes if k[1] < first]:
                del self._minutes[key]
            for link in self._links.values():
                if link.floor is not None:
                    link.floor = max(link.floor, first)


def live_feed(credentials: AlpacaCredentials, timeframe: str, *, streaming: bool) -> Any:
    """The live feed `tape trade` asks for: REST bars each cycle, or the stream with REST back-fill."""
    rest = AlpacaBarFeed(credentials, timeframe)
    return StreamingBarFeed(credentials, timeframe, rest=rest) if streaming else rest


def _merge(group: list[LiveBar], bar_ns: int) -> LiveBar:
    return LiveBar(
        group[0].symbol,
        group[0].ts // bar_ns * bar_ns,
        group[0].open,
        max(m.high for m in group),
        min(m.low for m in group),
        group[-1].close,
        sum(m.volume for m in group),
    )


def _by_kind(symbols: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for symbol in symbols:
        out.setdefault("crypto" if "/" in symbol else "stocks", []).append(symbol)
    return out


def _rfc3339_ns(text: str) -> int:
    import pandas as pd

    return int(pd.Timestamp(text).value)
