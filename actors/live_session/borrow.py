"""Which stocks a live session may short: Alpaca's asset flags, read once when the run opens.

A session that may go short (``--direction short|both``) and declares no ``--shortable`` itself asks
Alpaca for each stock's asset (``GET /v2/assets/{symbol}``: ``shortable``, ``easy_to_borrow``) before its
RunStarted is logged, and records the easy-to-borrow ones as its config's ``shortable`` (alpaca-docs
content/trading/margin-and-shorting.md: "Alpaca currently only supports opening short positions in easy
to borrow (ETB) securities"). The log then says what the run assumed: a resumed session takes the list
from its RunStarted, and replay, what-if and reconcile need no broker. The flags are not read again
while the run lasts.
"""

from __future__ import annotations

from typing import Any

from tape.actors.live_session.contracts import AssetFlagsBroker
from tape.events.backtest import BacktestConfig
from tape.events.schema import RunStarted
from tape.events.symbols import is_pair


def asks_broker(config: BacktestConfig) -> bool:
    """Whether the run's shortable stocks are Alpaca's to say: it may short stocks, declares none."""
    return config.risk.awaits_shortable and any(not is_pair(s) for s in config.symbols)


def with_broker_shortable(config: BacktestConfig, broker: Any) -> BacktestConfig:
    """``config`` with the stocks Alpaca calls easy to borrow as its ``shortable`` (an empty list when
    none is), when :func:`asks_broker`; otherwise, or with a broker that has no asset flags,
    ``config`` unchanged."""
    if not asks_broker(config) or not isinstance(broker, AssetFlagsBroker):
        return config
    return config.with_shortable(broker.easy_to_borrow([s for s in config.symbols if not is_pair(s)]))


def with_logged_shortable(config: BacktestConfig, opening: RunStarted) -> BacktestConfig:
    """``config`` with the ``shortable`` list its run recorded when it opened (a resumed session)."""
    logged = opening.config.get("risk", {}).get("shortable")
    if not asks_broker(config) or logged is None:
        return config
    return config.with_shortable(str(logged).split(","))
