"""A market-data stream session (stream.data.alpaca.markets), as alpaca-py's `DataStream` expects.

Protocol: on connect the server sends `[{"T":"success","msg":"connected"}]`; the client sends
`{"action":"auth","key":...,"secret":...}` and gets `[{"T":"success","msg":"authenticated"}]` or
`[{"T":"error","code":402,"msg":"auth failed"}]` (then the connection closes); `subscribe` /
`unsubscribe` with channel lists answer a `{"T":"subscription", ...}` summary. Frames are msgpack
when the client asked for `Content-Type: application/msgpack` (alpaca-py does), JSON otherwise;
timestamps in msgpack frames are msgpack Timestamps, as Alpaca sends them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import msgpack
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .auth import Credentials
from .timeutil import format_ts

CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds", "orderbooks")
AUTH_TIMEOUT = 10.0


class DataSession:
    kind = "data"

    def __init__(self, connection: ServerConnection, credentials: Credentials, crypto: bool) -> None:
        self.connection = connection
        self.crypto = crypto
        self._credentials = credentials
        headers = connection.request.headers if connection.request else {}
        self._msgpack = "msgpack" in (headers.get("Content-Type") or "")
        self.authenticated = False
        self.subscriptions: dict[str, set[str]] = {channel: set() for channel in CHANNELS}
        self._outbox: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()

    def wants(self, channel: str, symbol: str) -> bool:
        subs = self.subscriptions.get(channel, set())
        return self.authenticated and (symbol in subs or "*" in subs)

    def send_soon(self, messages: list[dict[str, Any]]) -> None:
        """Queue messages for this client (call on the hub's loop)."""
        self._outbox.put_nowait(messages)

    async def run(self) -> None:
        writer = asyncio.create_task(self._write())
        try:
            self.send_soon([{"T": "success", "msg": "connected"}])
            await self._read()
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()

    async def _write(self) -> None:
        while True:
            messages = await self._outbox.get()
            try:
                await self.connection.send(self._encode(messages))
            except ConnectionClosed:
                return

    def _encode(self, messages: list[dict[str, Any]]) -> bytes | str:
        if self._msgpack:
            return msgpack.packb([_msgpack_ready(m) for m in messages], datetime=True)
        return json.dumps(
            [{k: format_ts(v) if isinstance(v, datetime) else v for k, v in m.items()} for m in messages]
        )

    async def _read(self) -> None:
        while True:
            timeout = None if self.authenticated else AUTH_TIMEOUT
            try:
                raw = await asyncio.wait_for(self.connection.recv(), timeout)
            except TimeoutError:
                await self._fail(404, "auth timeout")
                return
            message = self._decode(raw)
            if message is None:
                self.send_soon([{"T": "error", "code": 400, "msg": "invalid syntax"}])
                continue
            if not await self._handle(message):
                return

    def _decode(self, raw: bytes | str) -> dict[str, Any] | None:
        try:
            message = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
        except (ValueError, msgpack.UnpackException):
            return None
        return message if isinstance(message, dict) else None

    async def _handle(self, message: dict[str, Any]) -> bool:
        action = message.get("action")
        if action == "auth":
            if self.authenticated:
                self.send_soon([{"T": "error", "code": 403, "msg": "already authenticated"}])
            elif self._credentials.valid((message.get("key"), message.get("secret"))):
                self.authenticated = True
                self.send_soon([{"T": "success", "msg": "authenticated"}])
            else:
                await self._fail(402, "auth failed")
                return False
        elif not self.authenticated:
            self.send_soon([{"T": "error", "code": 401, "msg": "not authenticated"}])
        elif action in ("subscribe", "unsubscribe"):
            for channel in CHANNELS:
                symbols = message.get(channel) or []
                if action == "subscribe":
                    self.subscriptions[channel].update(symbols)
                else:
                    self.subscriptions[channel].difference_update(symbols)
            self.send_soon([self._summary()])
        else:
            self.send_soon([{"T": "error", "code": 400, "msg": "invalid syntax"}])
        return True

    def _summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"T": "subscription"}
        for channel in CHANNELS:
            summary[channel] = sorted(self.subscriptions[channel])
        if not self.crypto:  # Alpaca adds corrections and cancel errors to stock trade subscriptions
            summary["corrections"] = summary["cancelErrors"] = sorted(self.subscriptions["trades"])
        return summary

    async def _fail(self, code: int, text: str) -> None:
        self.send_soon([{"T": "error", "code": code, "msg": text}])
        await asyncio.sleep(0.05)  # let the writer flush the error first
        await self.connection.close(1008, text)


def _msgpack_ready(message: dict[str, Any]) -> dict[str, Any]:
    return {
        k: msgpack.Timestamp.from_datetime(v) if isinstance(v, datetime) else v for k, v in message.items()
    }
