"""Alpaca credentials from the environment or `.env`; the secret never appears in any output."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec
from dotenv import dotenv_values

from tape.events.errors import ConfigError

PAPER_URL = "https://paper-api.alpaca.markets"


class AlpacaCredentials(msgspec.Struct, frozen=True):
    """Keys and endpoints. ``repr`` hides the secret, so a log line or traceback cannot leak it."""

    api_key: str
    secret_key: str
    base_url: str = PAPER_URL
    data_url: str | None = None  # override of the market-data endpoint (a local emulator in tests)
    timeout_seconds: float | None = None  # REST read timeout (ALPACA_TIMEOUT); None: the default
    stream_url: str | None = None  # ws(s)://host of the market-data streams (a local emulator in tests)

    @property
    def paper(self) -> bool:
        return "paper" in self.base_url or self.base_url.startswith("http://127.0.0.1")

    def __repr__(self) -> str:
        return f"AlpacaCredentials(api_key={self.api_key[:4]}…, secret_key=***, base_url={self.base_url!r})"

    __str__ = __repr__


def load_env(dotenv_path: Path | None = Path(".env")) -> dict[str, str]:
    """The ``.env`` file's values (when there is one) under the environment's: the environment wins."""
    values: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ)
    return values


def load_alpaca_credentials(
    env: Mapping[str, str] | None = None, dotenv_path: Path | None = Path(".env")
) -> AlpacaCredentials:
    """ALPACA_API_KEY, ALPACA_API_SECRET, ALPACA_BASE_URL (paper by default; a trailing ``/v2`` is
    accepted), the optional ALPACA_DATA_URL, ALPACA_STREAM_URL (market-data WebSocket host) and
    ALPACA_TIMEOUT (seconds a REST request may take).
    The environment wins over the ``.env`` file."""
    values: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ if env is None else env)
    for name in ("ALPACA_API_KEY", "ALPACA_API_SECRET"):
        if not values.get(name, "").strip():
            raise ConfigError(f"{name} is not set (put it in the environment or in .env)")
    base = values.get("ALPACA_BASE_URL", "").strip().rstrip("/") or PAPER_URL
    base = base.removesuffix("/v2")
    if not base.startswith(("https://", "http://")):
        raise ConfigError("ALPACA_BASE_URL must start with https:// (or http:// for a local emulator)")
    data_url = values.get("ALPACA_DATA_URL", "").strip().rstrip("/") or None
    return AlpacaCredentials(
        api_key=values["ALPACA_API_KEY"].strip(),
        secret_key=values["ALPACA_API_SECRET"].strip(),
        base_url=base,
        data_url=data_url,
        timeout_seconds=_timeout(values.get("ALPACA_TIMEOUT", "").strip()),
        stream_url=values.get("ALPACA_STREAM_URL", "").strip().rstrip("/") or None,
    )


def _timeout(text: str) -> float | None:
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 3600:
        raise ConfigError(f"ALPACA_TIMEOUT must be a number of seconds above 0 (got {text!r})")
    return seconds
