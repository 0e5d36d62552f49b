"""What a symbol may look like: a stock ticker or a crypto pair, checked before anything is stored.

A stock is 1-10 upper-case letters or digits starting with a letter, optionally followed by a share
class of 1-3 letters or digits after a dot or a dash (``AAPL``, ``BRK.B``, ``BF-B``). A crypto pair is
two such codes of 2-10 letters or digits joined by a slash (``BTC/USD``, ``ETH/BTC``). Input is trimmed
and upper-cased first; anything else (paths, quotes, semicolons, spaces) is refused.
"""

from __future__ import annotations

import re

from tape.events.errors import ConfigError

SYMBOL_RULE = "a stock like AAPL or BRK.B, or a crypto pair like BTC/USD"
_STOCK = re.compile(r"^[A-Z][A-Z0-9]{0,9}(?:[.-][A-Z0-9]{1,3})?$")
_PAIR = re.compile(r"^[A-Z0-9]{2,10}/[A-Z0-9]{2,10}$")


def normalise_symbol(text: str) -> str:
    """The symbol in its stored form (trimmed, upper case); raises ConfigError when it is not one."""
    symbol = text.strip().upper()
    if not (_STOCK.match(symbol) or _PAIR.match(symbol)):
        raise ConfigError(f"not a symbol: {text.strip()!r} (expected {SYMBOL_RULE})")
    return symbol


def is_pair(symbol: str) -> bool:
    """Crypto pairs are written with a slash (BTC/USD) and trade around the clock."""
    return "/" in symbol
