"""A trading-stream session (paper-api.alpaca.markets/stream), as alpaca-py's `TradingStream` expects.

Protocol (JSON in binary frames, as Alpaca sends them): the client authenticates with
`{"action":"authenticate","data":{"key_id":...,"secret_key":...}}` and gets
`{"stream":"authorization","data":{"action":"authenticate","status":"authorized"}}` (or
`"unauthorized"`, then the connection closes); `{"action":"listen","data":{"streams":["trade_updates"]}}`
answers `{"stream":"listening",...}`; then every order event arrives as
`{"stream":"trade_updates","data":{"event":...,"order":{...},...}}`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .auth import Credentials

AUTH_TIMEOUT = 10.0


class TradeSession:
    kind = "trading"

    def __init__(
        self, connection: ServerConnection, credentials: Credentials, refuse_auth: bool = False
    ) -> None:
        self.connection = connection
        self._credentials = credentials
        self._refuse_auth = refuse_auth  # answer every login "unauthorized" (a fault)
        self.authenticated = False
        self.streams: set[str] = set()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @property
    def listening(self) -> bool:
        return self.authenticated and "trade_updates" in self.streams

    def send_soon(self, message: dict[str, Any]) -> None:
        self._outbox.put_nowait(message)

    async def run(self) -> None:
        writer = asyncio.create_task(self._write())
        try:
            await self._read()
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()

    async def _write(self) -> None:
        while True:
            message = await self._outbox.get()
            try:
                await self.connection.send(json.dumps(message).encode())
            except ConnectionClosed:
                return

    async def _read(self) -> None:
        while True:
            timeout = None if self.authenticated else AUTH_TIMEOUT
            try:
                raw = await asyncio.wait_for(self.connection.recv(), timeout)
            except TimeoutError:
                await self.connection.close(1008, "auth timeout")
                return
            try:
                message = json.loads(raw)
            except ValueError:
                message = None
            if not isinstance(message, dict):
                self.send_soon({"stream": "error", "data": {"error_message": "invalid syntax"}})
                continue
            data = message.get("data") or {}
            action = message.get("action")
            if action in ("authenticate", "auth"):
                pair = (data.get("key_id"), data.get("secret_key"))
                ok = self._credentials.valid(pair) and not self._refuse_auth
                status = "authorized" if ok else "unauthorized"
                self.send_soon(
                    {"stream": "authorization", "data": {"action": "authenticate", "status": status}}
                )
                if not ok:
                    await asyncio.sleep(0.05)
                    await self.connection.close(1008, "unauthorized")
                    return
                self.authenticated = True
            elif not self.authenticated:
                self.send_soon(
                    {"stream": "authorization", "data": {"action": action, "status": "unauthorized"}}
                )
            elif action == "listen":
                self.streams = set(data.get("streams") or [])
                self.send_soon({"stream": "listening", "data": {"streams": sorted(self.streams)}})
            else:
                self.send_soon({"stream": "error", "data": {"error_message": "unrecognized action"}})
