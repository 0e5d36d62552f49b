"""Alpaca's trade-update stream (alpaca-py TradingStream) in a background thread.

It tells the session promptly that an order it just placed has ended (filled, canceled, rejected), so
the fills are collected in the same cycle instead of the next. Polling the order stays the source of
truth: the stream only shortens the wait, and what it says is never logged. Executions are keyed by
Alpaca's execution id, so an update delivered twice counts once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from store.credentials import AlpacaCredentials

ENDED = ("filled", "canceled", "expired", "rejected", "done_for_day")


class TradeUpdates:
    """What Alpaca streamed about our orders: each one's latest status and every execution."""

    def __init__(self, credentials: AlpacaCredentials) -> None:
        from alpaca.trading.stream import TradingStream

        url = None if credentials.stream_url is None else credentials.stream_url + "/stream"
        self._stream = TradingStream(
            credentials.api_key,
            credentials.secret_key,
            paper=credentials.paper,
            raw_data=True,
            url_override=url,
            websocket_params={"ping_interval": 10, "ping_timeout": 10, "max_queue": 1024},
        )
        self._stream.subscribe_trade_updates(self._on_update)
        self._cond = threading.Condition()
        self.status: dict[str, str] = {}  # client order id -> latest status
        self.executions: dict[str, tuple[str, float, float]] = {}  # execution id -> (client id, qty, price)
        self.received = 0  # updates received, duplicates included
        self._thread = threading.Thread(target=self._stream.run, name="alpaca-trade-updates", daemon=True)
        self._thread.start()
        # Orders placed before the stream listens would go unheard: give it a moment to connect.
        deadline = time.monotonic() + 5
        while not self._stream._running and time.monotonic() < deadline:
            time.sleep(0.01)

    async def _on_update(self, message: dict[str, Any]) -> None:
        data = message.get("data") or {}
        order = data.get("order") or {}
        client_id = order.get("client_order_id")
        with self._cond:
            self.received += 1
            if client_id:
                self.status[client_id] = str(order.get("status"))
                execution = data.get("execution_id")
                if execution and execution not in self.executions:
                    self.executions[execution] = (client_id, float(data["qty"]), float(data["price"]))
            self._cond.notify_all()

    def wait_ended(self, client_order_ids: list[str], timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until the stream has seen every one of these orders end."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not all(self.status.get(c) in ENDED for c in client_order_ids):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        """Stop the stream and its thread."""
        stream = self._stream
        deadline = time.monotonic() + 5
        while getattr(stream, "_loop", None) is None and time.monotonic() < deadline:
            time.sleep(0.01)  # a stop sent before the stream's loop runs would be forgotten
        loop = stream._loop
        if loop is not None and loop.is_running():
            stream.stop()
            asyncio.run_coroutine_threadsafe(stream.close(), loop)  # ends a pending receive
        self._thread.join(timeout=10)
