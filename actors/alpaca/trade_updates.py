"""Alpaca's trade-update stream (alpaca-py TradingStream) in a background thread.

It tells the session promptly that an order it just placed has ended (filled, canceled, rejected), so
the fills are collected in the same cycle instead of the next. Polling the order stays the source of
truth: the stream only shortens the wait, and what it says is never logged. Executions are keyed by
Alpaca's execution id, so an update delivered twice counts once.

The stream is optional. When it cannot connect, is refused or drops, the session trades on by polling
alone (:meth:`TradeUpdates.trouble` says why; the session logs it once). alpaca-py's own run loop
(``TradingStream.run``) logs every failed attempt with a traceback on stderr and retries a refused login
forever, so this module drives the stream's connect, login, listen and dispatch steps with a loop of its
own: it is quiet, gives up on a refused login (the same keys would be refused again), reconnects after
anything else with a backoff, and :meth:`TradeUpdates.close` cancels it whatever it is waiting for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from typing import Any

from tape.actors.alpaca.order_status import is_done
from tape.store.credentials import AlpacaCredentials

START_WAIT_S = 5.0  # the constructor waits this long for the stream to listen (or fail)
HANDSHAKE_S = 5.0  # connect, log in and ask to listen, or count the attempt as failed
MAX_BACKOFF_S = 30.0
# Keep-alive pings find a dead TCP connection within ~20 s; closing never waits long for the server.
WEBSOCKET_PARAMS = {
    "ping_interval": 10,
    "ping_timeout": 10,
    "max_queue": 1024,
    "open_timeout": HANDSHAKE_S,
    "close_timeout": 1,
}


def trade_stream_url(credentials: AlpacaCredentials) -> str:
    """ALPACA_STREAM_URL's host (a local emulator) if set, else the trading API's own host: Alpaca serves
    the stream at ``wss://<trading host>/stream``, so the keys only go where ALPACA_BASE_URL points."""
    if credentials.stream_url:
        return credentials.stream_url + "/stream"
    scheme, rest = credentials.base_url.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/stream"


class TradeUpdates:
    """What Alpaca streamed about our orders: each one's latest status and every execution."""

    def __init__(self, credentials: AlpacaCredentials, *, start_wait_s: float = START_WAIT_S) -> None:
        from alpaca.trading.stream import TradingStream

        self._stream = TradingStream(
            credentials.api_key,
            credentials.secret_key,
            paper=credentials.paper,
            raw_data=True,
            url_override=trade_stream_url(credentials),
            websocket_params=dict(WEBSOCKET_PARAMS),
        )
        self._stream.subscribe_trade_updates(self._on_update)
        self._cond = threading.Condition()
        self.status: dict[str, str] = {}  # client order id -> latest status
        self.executions: dict[str, tuple[str, float, float]] = {}  # execution id -> (client id, qty, price)
        self.received = 0  # updates received, duplicates included
        self.listening = False  # Alpaca confirmed it sends our trade updates on the current connection
        self.attempts = 0  # connections tried
        self.drops = 0  # connections lost after they listened
        self.problem = ""  # why the stream is not listening (the latest failure)
        self.gave_up = False  # the login was refused: no more attempts
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="alpaca-trade-updates", daemon=True)
        self._thread.start()
        # Orders placed before the stream listens would go unheard: wait for it, or for its first failure.
        with self._cond:
            self._cond.wait_for(lambda: self.listening or bool(self.problem), timeout=start_wait_s)
            if not self.listening and not self.problem:
                self.problem = f"not listening after {start_wait_s:g} s"

    # ------------------------------------------------------------------ what the session asks

    def trouble(self) -> str:
        """Why the session cannot count on the stream right now ("" while it listens)."""
        with self._cond:
            return "" if self.listening else (self.problem or "not connected")

    def wait_ended(self, client_order_ids: list[str], timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until the stream has seen every one of these orders end.
        False at once while the stream is down: there is nothing to wait for, polling decides."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not all(is_done(self.status.get(c, "")) for c in client_order_ids):
                left = deadline - time.monotonic()
                if left <= 0 or not self.listening:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        """Stop the stream: its loop is cancelled wherever it waits (connect, login, receive, backoff)."""
        with self._cond:
            self._closing = True
            loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already (a refused login)
                loop.call_soon_threadsafe(task.cancel)
        self._thread.join(timeout=5)
        self._set(listening=False)

    # ------------------------------------------------------------------ the stream's thread

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
                    with contextlib.suppress(KeyError, TypeError, ValueError):  # only a hint: skip it
                        self.executions[execution] = (client_id, float(data["qty"]), float(data["price"]))
            self._cond.notify_all()

    def _set(self, **state: Any) -> None:
        with self._cond:
            for name, value in state.items():
                setattr(self, name, value)
            self._cond.notify_all()

    def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # close() cancelled the loop: a normal end
            asyncio.run(self._serve())

    async def _serve(self) -> None:
        """Connect, listen and reconnect until closed; a refused login ends it for good."""
        with self._cond:
            if self._closing:
                return
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        stream, failures = self._stream, 0
        try:
            while True:
                with self._cond:
                    self.attempts += 1
                try:
                    await asyncio.wait_for(stream._start_ws(), HANDSHAKE_S)  # connect, log in, listen
                    await self._receive()
                except Exception as exc:  # refused, unreachable, timed out, or a lost connection
                    if isinstance(exc, ValueError) and "failed to authenticate" in str(exc):
                        # alpaca-py's words for an "unauthorized" answer: the same keys would be refused
                        # again, so the thread ends here (and polling carries on).
                        self._set(problem="Alpaca refused the login; not retrying", gave_up=True)
                        return
                    if self.listening:
                        failures = 0
                        self._set(
                            listening=False, drops=self.drops + 1, problem=f"connection lost ({_why(exc)})"
                        )
                    else:
                        self._set(problem=f"cannot connect ({_why(exc)})")
                    failures += 1
                await _quietly(stream.close())
                await asyncio.sleep(min(MAX_BACKOFF_S, 2.0 ** (failures - 1)))
        finally:
            await _quietly(stream.close())

    async def _receive(self) -> None:
        """Hand trade updates to the handler until the connection ends (which raises)."""
        stream = self._stream
        ws = stream._ws
        assert ws is not None
        while True:
            raw = await ws.recv()
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            if message.get("stream") == "listening":
                streams = (message.get("data") or {}).get("streams") or []
                if "trade_updates" in streams:
                    self._set(listening=True, problem="")
                continue
            await stream._dispatch(message)


async def _quietly(closing: Any) -> None:
    """Close a connection without waiting long or raising: it may be half open or already gone."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(closing, 2)


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__
