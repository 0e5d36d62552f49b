"""The credentials alpaca-py sends: `APCA-API-KEY-ID`/`APCA-API-SECRET-KEY` headers, or HTTP Basic
(`use_basic_auth=True`). Checks answer the way each Alpaca API does."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from .errors import ApiError
from .http_server import Request


@dataclass(frozen=True)
class Credentials:
    key_id: str
    secret: str

    def presented(self, request: Request) -> tuple[str, str] | None:
        """The (key, secret) pair in the request, or None when it carries none."""
        key, secret = request.headers.get("apca-api-key-id"), request.headers.get("apca-api-secret-key")
        if key is not None or secret is not None:
            return key or "", secret or ""
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Basic "):
            try:
                key, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return "", ""
            return key, secret
        return None

    def valid(self, pair: tuple[str, str] | None) -> bool:
        return pair == (self.key_id, self.secret)

    def check_trading(self, request: Request) -> None:
        """Trading API: no credentials -> 403 `forbidden.`; wrong ones -> 401 with code 40110000."""
        pair = self.presented(request)
        if pair is None:
            raise ApiError(403, "forbidden.")
        if not self.valid(pair):
            raise ApiError(401, "request is not authorized", 40110000)

    def check_data(self, request: Request) -> None:
        """Market-data API: missing or wrong credentials -> 403 `forbidden.`, except that crypto data
        may be read without credentials (wrong ones are still refused)."""
        pair = self.presented(request)
        if pair is None and request.path.startswith("/v1beta3/crypto/"):
            return
        if not self.valid(pair):
            raise ApiError(403, "forbidden.")
