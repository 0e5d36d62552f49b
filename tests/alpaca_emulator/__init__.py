"""A local emulator of Alpaca's endpoints for tests: the real alpaca-py clients talk to it on 127.0.0.1."""

from tests.alpaca_emulator.market_data import MarketDataEmulator
from tests.alpaca_emulator.trading import TradingEmulator

__all__ = ["MarketDataEmulator", "TradingEmulator"]
