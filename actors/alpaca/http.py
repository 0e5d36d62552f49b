"""Network policy for every alpaca-py REST client tape creates: timeouts and retried status codes.

alpaca-py sends its requests through a ``requests.Session`` without a timeout, so a server that
accepts the connection and never answers would hang a trading cycle forever. :func:`harden` mounts
an adapter that gives every request a connect and a read timeout (a timeout raises
``requests.Timeout``, an ``OSError``, which callers already treat as "cannot reach Alpaca"), and
makes alpaca-py's own retry loop cover 5xx answers as well as 429 and 504.
"""

from __future__ import annotations

from typing import Any, TypeVar

from requests.adapters import HTTPAdapter

DEFAULT_TIMEOUT_SECONDS = 10.0  # read timeout; ALPACA_TIMEOUT overrides it
CONNECT_TIMEOUT_CAP = 5.0  # a loopback or nearby server connects in milliseconds when it is up
RETRY_CODES = [429, 500, 502, 503, 504]

Client = TypeVar("Client")


class TimeoutAdapter(HTTPAdapter):
    """An HTTP adapter whose requests time out unless the caller chose a timeout itself."""

    def __init__(self, timeout: tuple[float, float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def timeouts(seconds: float | None) -> tuple[float, float]:
    """(connect, read) timeouts for a read timeout of ``seconds`` (the default when None)."""
    read = DEFAULT_TIMEOUT_SECONDS if seconds is None else float(seconds)
    return min(read, CONNECT_TIMEOUT_CAP), read


def with_timeouts(client: Client, timeout_seconds: float | None = None) -> Client:
    """Give every request of an alpaca-py REST client a connect and a read timeout."""
    adapter = TimeoutAdapter(timeouts(timeout_seconds))
    session = client._session  # type: ignore[attr-defined]
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return client


def harden(client: Client, *, timeout_seconds: float | None = None, retry_wait_seconds: float = 1) -> Client:
    """Request timeouts, and retries of 429/5xx ``retry_wait_seconds`` apart (alpaca-py's own
    default waits 3 s and skips 500-503: too long, and too little, inside a trading cycle)."""
    with_timeouts(client, timeout_seconds)
    client._retry_wait = retry_wait_seconds  # type: ignore[attr-defined]
    client._retry_codes = list(RETRY_CODES)  # type: ignore[attr-defined]
    return client
