"""`tape dashboard`: the `tape watch` screen as a web page, updated live from the log by server-sent events.

A small ASGI app (starlette). It reads the log only, read-only and through a fresh connection per poll
(store/run_follow.py), so it runs beside a trading session, the engine, or on a finished log. What it
shows is :func:`events.status.run_status` of the run: the same fold `tape status --json` prints. That
status holds no configuration, so no credential can reach the page.

Anyone who can reach the port can read the page: it binds to loopback unless told otherwise, and a
token, when set, must come with every request (``?token=`` or ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tape.events.errors import ConfigError
from tape.events.status import run_status
from tape.store.dashboard_page import PAGE
from tape.store.log import LogError
from tape.store.run_follow import RunFollower, newest_trading_run

HEARTBEAT_S = 15.0  # a comment line this often keeps proxies and browsers from closing an idle stream


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """A non-loopback address needs a token: the page would otherwise be open to the network."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"--host {host} is reachable from other machines: give --token (or TAPE_DASHBOARD_TOKEN) "
            "so every request must carry it"
        )


class Watched:
    """The run the dashboard shows, followed incrementally: the run given, else the newest trading
    session, else (a log of backtests) the newest run of any kind."""

    def __init__(self, log_path: Path, run: str | None) -> None:
        self._log_path = log_path
        self._run = run
        self._follower: RunFollower | None = None
        self.waiting = "no log yet"

    def poll(self) -> int:
        """New events since the last poll (0 while there is no run to show yet)."""
        if self._follower is None:
            if not self._log_path.exists():
                self.waiting = f"waiting for {self._log_path} to be created"
                return 0
            try:
                self._follower = RunFollower(self._log_path, self._run or _default_run(self._log_path))
            except LogError as exc:
                self.waiting = str(exc)
                return 0
        return self._follower.poll()

    def status(self) -> dict[str, Any]:
        """The run's status (run_status), or a waiting state saying why there is nothing yet."""
        if self._follower is None:
            return {"state": "waiting", "message": self.waiting}
        return run_status(self._follower.events)


def _default_run(log_path: Path) -> str:
    from tape.store.log import EventLog
    from tape.store.period_report import newest_run

    with EventLog.open(log_path, readonly=True) as log:
        try:
            return newest_trading_run(log)
        except LogError:
            return newest_run(log)


class TokenGate:
    """Every request must carry the token, as ``?token=`` or ``Authorization: Bearer``; else 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._carries_token(Request(scope)):
            response = PlainTextResponse("unauthorized: this dashboard needs its token\n", status_code=401)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _carries_token(self, request: Request) -> bool:
        given = request.query_params.get("token", "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        return hmac.compare_digest(given.encode(), self.token)


def dashboard_app(
    log_path: Path, *, run: str | None = None, token: str | None = None, interval: float = 0.5
) -> ASGIApp:
    """The ASGI app: ``/`` the page, ``/status`` one status as JSON, ``/stream`` every change as SSE."""
    if run:  # a bad run id is an error at start, not a page that never fills
        from tape.store.log import EventLog
        from tape.store.runs import find_run

        with EventLog.open(log_path, readonly=True) as log:
            run = find_run(log, run).run_id

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})

    async def status(request: Request) -> Response:
        watched = Watched(log_path, run)
        await asyncio.to_thread(watched.poll)
        return JSONResponse(watched.status(), headers={"Cache-Control": "no-store"})

    async def stream(request: Request) -> Response:
        return StreamingResponse(
            _changes(request, Watched(log_path, run), interval),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    app: ASGIApp = Starlette(
        routes=[Route("/", page), Route("/status", status), Route("/stream", stream)],
    )
    return TokenGate(app, token) if token else app


async def _changes(request: Request, watched: Watched, interval: float) -> AsyncIterator[str]:
    """The status now, then again whenever events were appended; a heartbeat comment when idle."""
    first = True
    idle = 0.0
    while True:
        new = await asyncio.to_thread(watched.poll)
        if first or new:
            first = False
            idle = 0.0
            yield f"data: {json.dumps(watched.status(), separators=(',', ':'))}\n\n"
        elif idle >= HEARTBEAT_S:
            idle = 0.0
            yield ": still here\n\n"
        if await request.is_disconnected():
            return
        await asyncio.sleep(interval)
        idle += interval
