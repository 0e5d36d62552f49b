"""Alpaca's historical market-data REST API (stock and crypto bars), served on 127.0.0.1.

Behaves like the real service where alpaca-py can tell: key headers checked (403 otherwise), bars
filtered by start/end, pages of at most ``page_size`` bars chained by ``next_page_token``, the response
shape ``{"bars": {SYMBOL: [...]}, "next_page_token": ...}``. Faults can be injected for the next requests.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from collections import defaultdict
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

Bar = tuple[int, float, float, float, float, float]  # ts ns, open, high, low, close, volume


def _rfc3339(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> int:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1_000_000) * 1000


class MarketDataEmulator:
    """Start with ``with MarketDataEmulator() as emu:``; point alpaca-py at ``emu.url``."""

    key_id = "TESTKEY"
    secret = "TESTSECRET"

    def __init__(self, page_size: int = 1000) -> None:
        self.page_size = page_size
        self.bars: dict[tuple[str, str], list[Bar]] = defaultdict(list)
        self.requests: list[str] = []
        self._faults: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> MarketDataEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_bars(self, symbol: str, rows: Iterable[Bar], timeframe: str = "1Day") -> None:
        """Seed bars (ts in ns UTC); kept sorted by time."""
        with self._lock:
            series = self.bars[(symbol, timeframe)]
            series.extend(rows)
            series.sort()

    def fail_next(self, count: int, status: int = 500) -> None:
        """The next ``count`` requests answer ``status`` (429 and 5xx exercise retries and errors)."""
        with self._lock:
            self._faults.extend([status] * count)

    # ------------------------------------------------------------------ serving

    def _answer(self, path: str, query: dict[str, list[str]], headers: Any) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(path)
            if self._faults:
                status = self._faults.pop(0)
                return status, {"message": f"injected fault {status}"}
        if headers.get("APCA-API-KEY-ID") != self.key_id or headers.get("APCA-API-SECRET-KEY") != self.secret:
            return 403, {"message": "forbidden."}
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:3] == ["v2", "stocks", "bars"] or parts[:3] == ["v1beta3", "crypto", "us"]:
            symbols = query.get("symbols", [""])[0].split(",")
        elif parts[:2] == ["v2", "stocks"] and parts[-1] == "bars":
            symbols = ["/".join(parts[2:-1])]
        else:
            return 404, {"message": "endpoint not found"}
        timeframe = query.get("timeframe", ["1Day"])[0]
        start = _parse_time(query["start"][0]) if "start" in query else 0
        end = _parse_time(query["end"][0]) if "end" in query else 2**62
        limit = min(int(query.get("limit", [self.page_size])[0] or self.page_size), self.page_size)
        offset = int(base64.b64decode(query["page_token"][0]).decode()) if query.get("page_token") else 0
        # Bars of all requested symbols in one sequence, symbol by symbol, as Alpaca pages them.
        flat = [
            (symbol, bar)
            for symbol in symbols
            for bar in self.bars.get((symbol, timeframe), [])
            if start <= bar[0] <= end
        ]
        page = flat[offset : offset + limit]
        out: dict[str, list[dict[str, Any]]] = {}
        for symbol, (ts, o, h, low, c, v) in page:
            out.setdefault(symbol, []).append(
                {"t": _rfc3339(ts), "o": o, "h": h, "l": low, "c": c, "v": v, "n": 1, "vw": c}
            )
        more = offset + limit < len(flat)
        token = base64.b64encode(str(offset + limit).encode()).decode() if more else None
        return 200, {"bars": out, "next_page_token": token}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                status, body = emulator._answer(parsed.path, parse_qs(parsed.query), self.headers)
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                return None  # keep test output clean

        return Handler
