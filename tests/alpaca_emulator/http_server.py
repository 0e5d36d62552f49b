"""A small threaded JSON HTTP server with path-pattern routing, for the emulated REST APIs.

Each API (market data, trading) is a `JsonApi`: routes, an auth check, and an error body style.
Before routing, every request is logged, delayed and possibly failed by the shared `Faults`.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import INJECTED_MESSAGES, ApiError
from .faults import Faults


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern

    def arg(self, name: str, default: str | None = None) -> str | None:
        value = self.query.get(name)
        return default if value in (None, "") else value


@dataclass(frozen=True)
class RequestRecord:
    """One request as the emulator saw it, for test assertions (`emu.requests`)."""

    api: str
    method: str
    path: str
    query: dict[str, str]


Handler = Callable[[Request], tuple[int, Any]]


class JsonApi:
    """Routes plus the API-wide policies: authentication and the shape of error bodies."""

    def __init__(self, name: str, faults: Faults, log: list[RequestRecord], with_codes: bool) -> None:
        self.name = name
        self._faults = faults
        self._log = log
        self._with_codes = with_codes
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.authenticate: Callable[[Request], None] = lambda request: None
        #: Tracebacks of handler bugs (answered as 500s); the test fixture asserts there are none.
        self.internal_errors: list[str] = []

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """`pattern` like `/v2/stocks/{symbol}/bars`; `{name:path}` also matches slashes."""
        regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", pattern)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        self._routes.append((method, re.compile(f"^{regex}$"), handler))

    def handle(self, request: Request) -> tuple[int, Any]:
        self._log.append(RequestRecord(self.name, request.method, request.path, dict(request.query)))
        delay = self._faults.delay_for(request.path)
        stall, after = self._faults.take_stall(request.method, request.path)
        if delay or (stall and not after):
            time.sleep(delay + (0.0 if after else stall))
        answer = self._answer(request)
        if after and stall:
            time.sleep(stall)
        return answer

    def _answer(self, request: Request) -> tuple[int, Any]:
        status = self._faults.take_failure(request.path, request.method)
        if status is not None:
            return status, self._error_body(
                ApiError(status, INJECTED_MESSAGES.get(status, "error"), status * 100000 + 10000)
            )
        try:
            self.authenticate(request)
            handler, params = self._match(request.method, request.path)
            request.params = params
            return handler(request)
        except ApiError as exc:
            return exc.status, self._error_body(exc)
        except Exception:
            self.internal_errors.append(traceback.format_exc())
            return 500, self._error_body(ApiError(500, "internal server error occurred", 50010000))

    def _match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        allowed = False
        for route_method, regex, handler in self._routes:
            match = regex.match(path)
            if match:
                if route_method == method:
                    return handler, match.groupdict()
                allowed = True
        if allowed:
            raise ApiError(405, "method not allowed", 40510000)
        raise ApiError(404, "endpoint not found", 40410000)

    def _error_body(self, exc: ApiError) -> dict[str, Any]:
        if self._with_codes:
            return exc.body
        return {k: v for k, v in exc.body.items() if k != "code"}


class HttpServer:
    """Serves one `JsonApi` on 127.0.0.1:<ephemeral port> from a background thread."""

    def __init__(self, api: JsonApi) -> None:
        handler = type("Handler", (_JsonHandler,), {"api": api})
        self._server = _TrackingServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=f"emu-{api.name}", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)


class _TrackingServer(ThreadingHTTPServer):
    """Remembers open (keep-alive) connections so that stopping ends them too."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)


class _JsonHandler(BaseHTTPRequestHandler):
    api: JsonApi
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed ACK
    # (~40 ms a request on a kept-alive connection). Alpaca's servers answer without that stall.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            self._send(400, {"code": 40010000, "message": "request body format is invalid"})
            return
        request = Request(
            method=self.command,
            path=unquote(parts.path),
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        status, payload = self.api.handle(request)
        self._send(status, payload)

    def _send(self, status: int, payload: Any) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        try:
            self.end_headers()
            if data:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (a timeout test): nobody to tell

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _dispatch
