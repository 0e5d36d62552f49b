"""`tape trade --feed alpaca-stream`: completed bars from the minute-bar streams (actors/alpaca/stream.py),
back-filled over REST for whatever the stream cannot vouch for."""

from __future__ import annotations

from typing import Any

from tape.actors.alpaca.feed import AlpacaBarFeed, LiveBar
from tape.actors.alpaca.stream import MinuteStream
from tape.actors.alpaca.stream_link import StreamLink
from tape.events.timeframes import timeframe_ns
from tape.store.credentials import AlpacaCredentials


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
        self.stream = MinuteStream(credentials, settle_seconds=settle_seconds)
        self._bar_ns = timeframe_ns(timeframe)

    def completed(self, symbols: list[str], after_ns: int, now_ns: int) -> list[LiveBar]:
        """Bars that started after ``after_ns`` and closed by ``now_ns``, in (time, symbol) order."""
        answer = self.stream.window(symbols, self._bar_ns, after_ns, now_ns)
        out = answer.bars
        if answer.rest:
            out = out + self.rest.completed(answer.rest, after_ns, now_ns)
        return _in_order(out, symbols)

    def get_latest_price(self, symbol: str) -> float:
        """The price of ``symbol``'s latest trade, over REST."""
        return self.rest.get_latest_price(symbol)

    @property
    def windows(self) -> dict[str, int]:
        """Windows answered from the stream and over REST, for status and tests."""
        return self.stream.windows

    @property
    def drops(self) -> int:
        return self.stream.drops

    @property
    def connected(self) -> bool:
        return self.stream.connected

    @property
    def _links(self) -> dict[str, StreamLink]:
        return self.stream._links

    def close(self) -> None:
        """Stop the streams and their threads."""
        self.stream.close()


def live_feed(credentials: AlpacaCredentials, timeframe: str, *, streaming: bool) -> Any:
    """The live feed `tape trade` asks for: REST bars each cycle, or the stream with REST back-fill."""
    rest = AlpacaBarFeed(credentials, timeframe)
    return StreamingBarFeed(credentials, timeframe, rest=rest) if streaming else rest


def _in_order(bars: list[LiveBar], symbols: list[str]) -> list[LiveBar]:
    order = {s: k for k, s in enumerate(symbols)}
    return sorted(bars, key=lambda b: (b.ts, order[b.symbol]))
