"""What a live session cannot trade at a broker yet, refused before the run is opened."""

from __future__ import annotations

from tape.events.backtest import BacktestConfig
from tape.events.errors import ConfigError


def refuse_unsupported_orders(config: BacktestConfig) -> None:
    """Order options a live session cannot trade at a broker yet refuse before anything is logged or
    sent: a stop entry or a trailing stop for a crypto pair (Alpaca takes no stop or trailing orders for
    pairs: docs "Crypto Orders")."""
    risk = config.risk
    pairs = any("/" in s for s in config.symbols)
    pair_stops = pairs and risk.option("entry_order", "market") == "stop"
    unsupported = [
        flag
        for flag, used in (
            ("--entry-order stop for a crypto pair", pair_stops),
            ("a trailing stop for a crypto pair", pairs and risk.trailing),
        )
        if used
    ]
    if unsupported:
        raise ConfigError(
            f"{', '.join(unsupported)}: not traded live yet (backtests and `tape trade --broker sim` only)"
        )
