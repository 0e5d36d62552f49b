"""One WebSocket server, on its own asyncio loop in a background thread, for both Alpaca streams.

Paths pick the protocol: `/stream` is the trading stream (trade_updates); `/v2/<feed>` (stocks)
and `/v1beta3/crypto/<loc>` (crypto) are market-data streams. Other threads reach sessions only
through `call` / `broadcast`, which hop onto the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from http import HTTPStatus
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response


class Session(Protocol):
    kind: str  # "data" | "trading"
    connection: ServerConnection

    async def run(self) -> None: ...


SessionFactory = Callable[[ServerConnection, str], Session | None]


class WebSocketHub:
    def __init__(self, make_session: SessionFactory, refuse: Callable[[str], bool] | None = None) -> None:
        self._make_session = make_session
        self._refuse = refuse  # paths whose WebSocket handshake is answered 503 right now
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emu-websockets", daemon=True)
        self._server: Server | None = None
        self.sessions: set[Session] = set()
        self.connections_opened: dict[str, int] = {"data": 0, "trading": 0}

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    def start(self) -> None:
        self._thread.start()
        self.call(self._start()).result(timeout=10)

    async def _start(self) -> None:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            ping_interval=None,
            max_size=2**22,
            process_request=self._process_request,
        )

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self._refuse is not None and self._refuse(request.path):
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "stream unavailable\n")
        return None

    def stop(self) -> None:
        if self._server is not None:
            self.call(self._stop()).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def call(self, coroutine: Awaitable[Any]) -> Future[Any]:
        """Run `coroutine` on the hub's loop from any thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]

    def soon(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the hub's loop from any thread, without waiting."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback)

    def drop_all(self, abrupt: bool = False) -> None:
        """Close every open WebSocket connection (cleanly, or by aborting the TCP connection)."""

        async def drop() -> None:
            for session in list(self.sessions):
                if abrupt:
                    session.connection.transport.abort()
                else:
                    await session.connection.close(1001, "going away")

        self.call(drop()).result(timeout=10)

    async def _handle(self, connection: ServerConnection) -> None:
        path = connection.request.path if connection.request else "/"
        session = self._make_session(connection, path)
        if session is None:
            await connection.close(1008, "unknown endpoint")
            return
        self.connections_opened[session.kind] += 1
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
