"""A local emulator of Alpaca's endpoints for tests: the real alpaca-py clients talk to it on 127.0.0.1."""

from tests.alpaca_emulator.market_data import MarketDataEmulator

__all__ = ["MarketDataEmulator"]
