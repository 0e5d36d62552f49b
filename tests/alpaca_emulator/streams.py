"""The emulator's streams: routes connections to sessions and fans events out to subscribers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection

from .auth import Credentials
from .data_stream import DataSession
from .trade_stream import TradeSession
from .ws_server import Session, WebSocketHub

_CHANNEL_OF_TYPE = {"t": "trades", "q": "quotes", "b": "bars", "u": "updatedBars", "d": "dailyBars"}


class Streams:
    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self.hub = WebSocketHub(self._session_for, refuse=self._refused)
        #: Send every trade update twice (a duplicate-delivery fault).
        self.duplicate_trade_updates = False
        #: Refuse the trading stream: "auth" (logins answered unauthorized) or "connect" (handshakes
        #: answered HTTP 503); None serves it.
        self.trade_stream_refusal: str | None = None

    def _refused(self, path: str) -> bool:
        return self.trade_stream_refusal == "connect" and path.split("?")[0].rstrip("/") == "/stream"

    def _session_for(self, connection: ServerConnection, path: str) -> Session | None:
        path = path.split("?")[0].rstrip("/")
        if path == "/stream":
            return TradeSession(
                connection, self._credentials, refuse_auth=self.trade_stream_refusal == "auth"
            )
        if path.startswith("/v1beta3/crypto/"):
            return DataSession(connection, self._credentials, crypto=True)
        if path.startswith("/v2/") or path.startswith("/v1beta1/"):
            return DataSession(connection, self._credentials, crypto=False)
        return None

    # -- fan-out (callable from any thread) -------------------------------------------------------
    def publish_market(self, message: dict[str, Any], crypto: bool) -> None:
        """Deliver one market-data message (`T` = t/q/b/u/d, `S` = symbol) to its subscribers."""
        channel = _CHANNEL_OF_TYPE[message["T"]]

        def deliver() -> None:
            for session in list(self.hub.sessions):
                if (
                    isinstance(session, DataSession)
                    and session.crypto == crypto
                    and session.wants(channel, message["S"])
                ):
                    session.send_soon([dict(message)])

        self.hub.soon(deliver)

    def publish_trade_update(self, payload: dict[str, Any]) -> None:
        message = {"stream": "trade_updates", "data": payload}
        copies = 2 if self.duplicate_trade_updates else 1

        def deliver() -> None:
            for session in list(self.hub.sessions):
                if isinstance(session, TradeSession) and session.listening:
                    for _ in range(copies):
                        session.send_soon(message)

        self.hub.soon(deliver)

    # -- test helpers -----------------------------------------------------------------------------
    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.01)

    def data_subscribed(self, channel: str, symbol: str) -> bool:
        return any(isinstance(s, DataSession) and s.wants(channel, symbol) for s in list(self.hub.sessions))

    def trade_listening(self) -> bool:
        return any(isinstance(s, TradeSession) and s.listening for s in list(self.hub.sessions))
