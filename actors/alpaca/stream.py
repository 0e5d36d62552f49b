"""The streaming market-data feed: Alpaca's minute-bar WebSocket, with REST wherever it may have gaps.

alpaca-py's StockDataStream (IEX) and CryptoDataStream run in background threads and reconnect by
themselves (:class:`MinuteStream`). Their minute bars are kept in a buffer, and a cycle's completed bars
are aggregated from it into the session's timeframe, aligned the way Alpaca's REST bars are (UTC minutes
and hours). The buffer answers a window only when it provably holds all of it; otherwise the window is
read over REST (:class:`~actors.alpaca.feed.AlpacaBarFeed`), which is always correct, only slower:

- the symbol must have been subscribed, on a connection without a drop or a reconnect, since before the
  window's first bar began (a *floor* per symbol, set at the first cycle that finds the connection up,
  the symbol confirmed by the server, and the stream current);
- every symbol's last minute of the window must have arrived (waited for up to ``settle_seconds``:
  Alpaca sends a minute's bar just after the minute ends). A mute connection, a drop the client has not
  noticed yet, or a symbol without trades in that minute all fall back to REST.

Bars are keyed by (symbol, minute), so a bar delivered twice counts once; a window only ever returns
bars that started after ``after_ns`` and closed by ``now_ns``, so nothing is handed over twice and a
bar still forming never is.

Corrected minutes: the streams also subscribe ``updatedBars`` (alpaca-py ``subscribe_updated_bars``,
message ``T: "u"``), which Alpaca sends when late trades amend a minute bar already sent. A correction
replaces that minute in the buffer. A window not read yet is aggregated with it (as Alpaca's REST bars
then are); a window already read is never handed over again, so a decision stands as it was made on
the bar the log recorded: tape neither decides twice on one bar nor rewrites what it decided.

`tape trade --feed alpaca-stream` owns a StreamingBarFeed (actors/alpaca/streaming_feed.py); the
engine shares one :class:`MinuteStream` between its sessions (actors/market_data.py), since Alpaca
allows one market-data connection per account.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any, NamedTuple

from tape.actors.alpaca.feed import LiveBar
from tape.actors.alpaca.stream_link import StreamLink, tracked_stream
from tape.store.credentials import AlpacaCredentials

MINUTE_NS = 60_000_000_000
HOUR_NS = 60 * MINUTE_NS
RETAIN_NS = 6 * HOUR_NS  # market time of minutes kept: windows older than that are read over REST
# Keep-alive pings find a dead TCP connection within ~20 s (alpaca-py's default waits 180 s for a pong).
WEBSOCKET_PARAMS = {"ping_interval": 10, "ping_timeout": 10, "max_queue": 1024}


class StreamAnswer(NamedTuple):
    """A window as the stream answers it: the bars of ``streamed`` symbols, and the symbols whose
    bars must be read over REST (the stream cannot vouch for them)."""

    bars: list[LiveBar]
    streamed: list[str]
    rest: list[str]


class MinuteStream:
    """The minute-bar WebSockets (one for stocks, one for crypto), their buffer, and which windows of
    which symbols it holds whole, at any timeframe that divides an hour.

    Symbols can be added while the streams run (:meth:`subscribe`, or any :meth:`window` call): they
    are subscribed on the running connection, and a symbol counts only from the first call at the
    present after the server confirmed it, so a symbol added in the middle of a window is read over
    REST for that window."""

    def __init__(
        self, credentials: AlpacaCredentials, *, settle_seconds: float = 5.0, retain_ns: int = RETAIN_NS
    ) -> None:
        """``settle_seconds``: how long a window waits for its last minute; ``retain_ns``: how much
        market time of minutes the buffer keeps (older windows are read over REST)."""
        self._credentials = credentials
        self._settle = settle_seconds
        self._retain = retain_ns
        self._cond = threading.Condition()
        self._subscribing = threading.Lock()  # concurrent callers must not open a kind's stream twice
        self._minutes: dict[str, dict[int, LiveBar]] = {}  # symbol -> minute start -> bar
        self._links: dict[str, StreamLink] = {}
        self._closed = False
        self.windows = {"stream": 0, "rest": 0}  # windows (per stream kind) answered by each source

    # ------------------------------------------------------------------ windows

    def window(self, symbols: list[str], bar_ns: int, after_ns: int, now_ns: int) -> StreamAnswer:
        """Bars of ``bar_ns`` that started after ``after_ns`` and closed by ``now_ns``, for the symbols
        whose whole window the buffer holds (all of a kind or none); the others are left to REST."""
        if now_ns <= after_ns:
            return StreamAnswer([], [], [])
        if not (bar_ns <= HOUR_NS and HOUR_NS % bar_ns == 0):
            # Minute and hour bars align to UTC like Alpaca's; daily bars (New York midnight) do not.
            return StreamAnswer([], [], list(symbols))
        self.subscribe(symbols)
        first = (after_ns // bar_ns + 1) * bar_ns  # the first bar start after after_ns
        last = now_ns // bar_ns * bar_ns - bar_ns  # the newest bar that has closed
        if last < first:
            return StreamAnswer([], [], [])
        out: list[LiveBar] = []
        streamed: list[str] = []
        rest: list[str] = []
        for kind, group in _by_kind(symbols).items():
            link = self._links.get(kind)
            whole = link is not None and self._covers(link, group, bar_ns, first, last, now_ns)
            if whole:
                out += self._aggregate(group, bar_ns, first, last)
                streamed += group
            else:
                rest += group
            with self._cond:
                self.windows["stream" if whole else "rest"] += 1
        self._prune()
        return StreamAnswer(out, streamed, rest)

    def subscribe(self, symbols: list[str]) -> None:
        """Make sure ``symbols`` are subscribed: start a kind's stream, or add them to the running one."""
        with self._subscribing:
            if not self._closed:
                self._subscribe(symbols)

    def _subscribe(self, symbols: list[str]) -> None:
        for kind, group in _by_kind(symbols).items():
            link = self._links.get(kind)
            if link is None:
                link = StreamLink(self._make_stream(kind), self._cond)
                link.stream.link = link
                link.wanted = set(group)
                link.stream.subscribe_bars(self._on_bar, *link.symbols)
                link.stream.subscribe_updated_bars(self._on_bar, *link.symbols)  # late trades amend
                self._links[kind] = link
                link.thread.start()
                continue
            with self._cond:
                new = sorted(set(group) - link.wanted)
                link.wanted |= set(new)
            if new:
                self._add(link, new)

    def _add(self, link: StreamLink, symbols: list[str]) -> None:
        """Subscribe ``symbols`` on ``link``'s running connection (or at its next connect). Done on the
        stream's own loop, where alpaca-py reads its handlers."""
        stream, handler = link.stream, self._on_bar

        async def add() -> None:
            for symbol in symbols:
                stream._handlers["bars"][symbol] = handler
                stream._handlers["updatedBars"][symbol] = handler
            if stream._running and stream._ws is not None:
                with contextlib.suppress(Exception):  # a closed socket: the reconnect subscribes all
                    await stream._send_subscribe_msg()

        loop = _stream_loop(stream)
        if loop is None or not loop.is_running():
            return  # the stream has ended (closed): nothing to add to
        with contextlib.suppress(RuntimeError, TimeoutError):
            asyncio.run_coroutine_threadsafe(add(), loop).result(timeout=10)

    def unsubscribe(self, symbols: list[str]) -> None:
        """Stop streaming ``symbols`` and forget their minutes. Subscribed again later (by
        :meth:`subscribe` or a window), a symbol counts from then on, as one added later does."""
        with self._subscribing:
            if self._closed:
                return
            for kind, group in _by_kind(symbols).items():
                link = self._links.get(kind)
                if link is None:
                    continue
                with self._cond:
                    gone = sorted(set(group) & link.wanted)
                    link.wanted -= set(gone)
                    link.confirmed -= set(gone)
                    link.asked_again -= set(gone)
                    for symbol in gone:
                        link.floors.pop(symbol, None)
                        self._minutes.pop(symbol, None)
                if gone:
                    self._remove(link, gone)

    def _remove(self, link: StreamLink, symbols: list[str]) -> None:
        """Unsubscribe ``symbols`` on ``link``'s running connection; without their handlers a reconnect
        does not subscribe them again. Done on the stream's own loop, where alpaca-py reads its handlers."""
        stream = link.stream

        async def remove() -> None:
            for symbol in symbols:
                stream._handlers["bars"].pop(symbol, None)
                stream._handlers["updatedBars"].pop(symbol, None)
            if stream._running and stream._ws is not None:
                with contextlib.suppress(Exception):  # a closed socket: the reconnect leaves them out
                    await stream._send_unsubscribe_msg("bars", symbols)
                    await stream._send_unsubscribe_msg("updatedBars", symbols)

        loop = _stream_loop(stream)
        if loop is None or not loop.is_running():
            return  # the stream has ended (closed): nothing is subscribed
        with contextlib.suppress(RuntimeError, TimeoutError):
            asyncio.run_coroutine_threadsafe(remove(), loop).result(timeout=10)

    @property
    def drops(self) -> int:
        """Connections lost (or closed) after they had subscribed, over all streams."""
        return sum(link.drops for link in self._links.values())

    @property
    def connected(self) -> bool:
        """Every stream is subscribed right now."""
        return bool(self._links) and all(link.up for link in self._links.values())

    @property
    def symbols(self) -> list[str]:
        """The symbols subscribed (or being subscribed), over all streams."""
        return sorted(s for link in self._links.values() for s in link.wanted)

    def close(self) -> None:
        """Stop the streams and their threads."""
        with self._subscribing:
            self._closed = True
        for link in self._links.values():
            stream = link.stream
            loop = _stream_loop(stream)
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
            return tracked_stream(CryptoDataStream)(**keys, url_override=url)
        url = None if base is None else base + "/v2/iex"
        return tracked_stream(StockDataStream)(**keys, feed=DataFeed.IEX, url_override=url)

    async def _on_bar(self, msg: dict[str, Any]) -> None:
        stamp = msg["t"]
        ts = stamp.to_unix_nano() if hasattr(stamp, "to_unix_nano") else _rfc3339_ns(str(stamp))
        symbol = msg["S"]
        minute = LiveBar(
            symbol, ts, float(msg["o"]), float(msg["h"]), float(msg["l"]), float(msg["c"]), float(msg["v"])
        )
        with self._cond:
            self._minutes.setdefault(symbol, {})[ts] = minute
            link = self._links.get("crypto" if "/" in symbol else "stocks")
            if link is not None and link.up:
                link.newest_ns = max(link.newest_ns or ts, ts)
            self._cond.notify_all()

    # ------------------------------------------------------------------ windows

    def _covers(
        self, link: StreamLink, symbols: list[str], bar_ns: int, first: int, last: int, now_ns: int
    ) -> bool:
        """Whether the buffer holds every minute of the bars ``first``..``last`` of ``symbols``:
        each subscribed without a drop since before ``first``, and each one's final minute arrived."""
        final = last + bar_ns - MINUTE_NS
        with self._cond:
            if not link.up or not set(symbols) <= link.confirmed:
                return False
            unset = [s for s in symbols if s not in link.floors]
            if unset:
                # Only a call at the present may set a floor: a warm-up or audit call asks about the
                # past, and the stream's newest minute tells the present from the past. The floor is
                # that present: every minute starting from it is sent after the subscription.
                if link.newest_ns is not None and now_ns >= link.newest_ns + MINUTE_NS:
                    link.floors.update(dict.fromkeys(unset, now_ns))
                return False
            if any(link.floors[s] > first for s in symbols):
                return False
            epoch = link.epoch
            deadline = time.monotonic() + self._settle
            while not all(final in self._minutes.get(s, {}) for s in symbols):
                left = deadline - time.monotonic()
                if left <= 0 or not link.up or link.epoch != epoch:
                    return False
                self._cond.wait(left)
            return link.up and link.epoch == epoch

    def _aggregate(self, symbols: list[str], bar_ns: int, first: int, last: int) -> list[LiveBar]:
        """The buffer's minutes of ``symbols`` in bars ``first``..``last``, merged like Alpaca's REST
        bars: open of the first minute, highest high, lowest low, close of the last, summed volume."""
        end = last + bar_ns
        out: list[LiveBar] = []
        for symbol in symbols:
            with self._cond:
                minutes = sorted(m for ts, m in self._minutes.get(symbol, {}).items() if first <= ts < end)
            group: list[LiveBar] = []
            for minute in minutes:
                if group and minute.ts // bar_ns != group[0].ts // bar_ns:
                    out.append(_merge(group, bar_ns))
                    group = []
                group.append(minute)
            if group:
                out.append(_merge(group, bar_ns))
        return out

    def _prune(self) -> None:
        """Forget minutes more than ``retain_ns`` older than their stream's newest; the floors move up
        with the prune, so a window reaching back that far is read over REST."""
        with self._cond:
            for link in self._links.values():
                if link.newest_ns is None:
                    continue
                cutoff = link.newest_ns - self._retain
                for symbol in link.wanted:
                    minutes = self._minutes.get(symbol)
                    if minutes and min(minutes) < cutoff:
                        self._minutes[symbol] = {ts: m for ts, m in minutes.items() if ts >= cutoff}
                    if symbol in link.floors:
                        link.floors[symbol] = max(link.floors[symbol], cutoff)


def _stream_loop(stream: Any, wait_s: float = 5.0) -> Any:
    """The asyncio loop of a stream whose thread was started (it appears once ``run`` begins)."""
    deadline = time.monotonic() + wait_s
    while getattr(stream, "_loop", None) is None and time.monotonic() < deadline:
        time.sleep(0.01)  # a stop or subscription sent before the stream's loop runs would be forgotten
    return getattr(stream, "_loop", None)


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
