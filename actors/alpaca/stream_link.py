"""One market-data WebSocket and what is known of its connection, told by the alpaca-py stream itself
(:func:`tracked_stream`) when it subscribes and when it closes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any


class StreamLink:
    """One WebSocket (stocks or crypto), its thread, and what is known of its connection.

    ``epoch`` counts connections whose subscription the server confirmed: a drop and reconnect always
    changes it. ``confirmed`` holds the symbols the server confirmed on the current connection and
    ``floors`` when each began to count (see actors/alpaca/stream.py); both are forgotten when the
    connection ends, so a reconnect or a symbol added later starts from nothing."""

    def __init__(self, stream: Any, lock: threading.Condition) -> None:
        self.stream, self._cond = stream, lock
        self.wanted: set[str] = set()  # symbols with a bar handler (subscribed on every (re)connect)
        self.confirmed: set[str] = set()
        self.floors: dict[str, int] = {}  # symbol -> windows starting at or after it are in the buffer
        self.asked_again: set[str] = set()  # missing symbols already asked for again on this connection
        self.up = False
        self.epoch = 0
        self.drops = 0
        self.newest_ns: int | None = None  # newest minute received on the current epoch
        self.thread = threading.Thread(target=stream.run, name="alpaca-bars", daemon=True)

    @property
    def symbols(self) -> list[str]:
        """The symbols wanted on this connection, sorted."""
        return sorted(self.wanted)

    def subscribed(self, message: dict[str, Any]) -> bool:
        """A subscription summary arrived; returns whether to ask again for wanted symbols missing from
        it (once per symbol and connection: a symbol the server will not serve stays on REST)."""
        bars = set(message.get("bars") or [])
        with self._cond:
            if not self.up:  # the first summary of a new connection
                self.up, self.epoch, self.newest_ns = True, self.epoch + 1, None
                self.confirmed, self.floors, self.asked_again = set(), {}, set()
            self.confirmed |= bars & self.wanted
            self._cond.notify_all()
            missing = self.wanted - bars - self.asked_again
            self.asked_again |= missing
            return bool(missing)

    def down(self) -> None:
        """The connection ended (a drop, a reconnect or a close): forget what it confirmed."""
        with self._cond:
            if self.up:
                self.up, self.drops = False, self.drops + 1
            self.confirmed, self.floors = set(), {}
            self._cond.notify_all()


def tracked_stream(base: type) -> type:
    """``base`` (an alpaca-py data stream) telling its :class:`StreamLink` when it subscribes and closes."""

    class Tracked(base):  # type: ignore[misc, valid-type]
        link: StreamLink

        async def _dispatch(self, msg: dict[str, Any]) -> None:
            if msg.get("T") == "subscription" and self.link.subscribed(msg):
                # A symbol added while the subscription message of a (re)connect was on its way is
                # missing from the summary: ask again (subscribing twice is harmless).
                asyncio.get_running_loop().create_task(self._subscribe_again())
            await super()._dispatch(msg)

        async def _subscribe_again(self) -> None:
            with contextlib.suppress(Exception):  # a closed socket: the reconnect subscribes everything
                if self._running and self._ws is not None:
                    await self._send_subscribe_msg()

        async def close(self) -> None:
            self.link.down()  # every lost or ended connection passes here before a reconnect
            await super().close()

    return Tracked
