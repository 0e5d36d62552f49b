"""Alpaca's error responses.

The trading API answers `{"code": <8 digits>, "message": ...}` (alpaca-py's `APIError.code` reads
the code); the market-data API answers `{"message": ...}` only.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised by a handler to answer with an error status and body."""

    def __init__(self, status: int, message: str, code: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = (
            ({"code": code} if code is not None else {}) | {"message": message} | extra
        )


# Trading API errors, with the codes Alpaca uses.
def unprocessable(message: str, **extra: Any) -> ApiError:
    return ApiError(422, message, 40010001, **extra)


def not_found(message: str) -> ApiError:
    return ApiError(404, message, 40410000)


def forbidden_trade(message: str, **extra: Any) -> ApiError:
    return ApiError(403, message, 40310000, **extra)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, 40010000)


# Market-data API errors (no code).
def data_error(status: int, message: str) -> ApiError:
    return ApiError(status, message)


INJECTED_MESSAGES = {
    429: "rate limit exceeded",
    500: "internal server error occurred",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}
