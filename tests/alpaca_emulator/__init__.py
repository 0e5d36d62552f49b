"""A local emulator of Alpaca's REST and WebSocket APIs that the real alpaca-py clients talk to."""

from .emulator import AlpacaEmulator

__all__ = ["AlpacaEmulator"]
