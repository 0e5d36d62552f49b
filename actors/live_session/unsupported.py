"""What a live session cannot trade at a broker yet, refused before the run is opened."""

from __future__ import annotations

from tape.events.backtest import BacktestConfig
from tape.events.errors import ConfigError


def refuse_unsupported_orders(config: BacktestConfig) -> None:
    """Order options a live session cannot trade at a broker yet refuse before anything is logged or
    sent: a stop entry for a crypto pair (Alpaca takes no stop orders for pairs: docs "Crypto Orders")
    and trailing stops (the broker's stop would not follow the level)."""
    risk = config.risk
    pair_stops = any("/" in s for s in config.symbols) and risk.option("entry_order", "market") == "stop"
    unsupported = [
        flag
        for flag, used in (
            ("--entry-order stop for a crypto pair", pair_stops),
            ("--trail-pct/--trail-amount/--trail-atr", risk.trailing),
        )
        if used
    ]
    if unsupported:
        raise ConfigError(
            f"{', '.join(unsupported)}: not traded live yet (backtests and `tape trade --broker sim` only)"
        )
