"""What a live session needs of its surroundings: a broker, a feed of completed bars, strategies.

Optional capabilities are declared here too: a broker says when to poll (:meth:`Broker.await_orders`)
and whether its trade-update stream listens; a feed that reads the engine's shared stream
(:class:`StreamHealthFeed`, e.g. actors/market_data.SharedStreamFeed) also reports that stream's health.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import msgspec

from tape.actors.alpaca.feed import LiveBar
from tape.actors.alpaca.order_status import BrokerOrder
from tape.events.backtest import BacktestConfig
from tape.events.schema import OrderSubmitted
from tape.events.strategies import make_strategy

Decision = tuple[int, dict[str, float], str]  # (side, indicator values, reason)
DAY_NS = 86_400_000_000_000
NOT_SENT = "not sent: protective filled first"
UNSENT = ("broker", "end of data", NOT_SENT)  # cancels logged for orders the broker does not work


def live_run_id(config: BacktestConfig, base_url: str) -> str:
    """The same configuration on the same account is the same run: a restart resumes it."""
    return "live-" + hashlib.sha256(msgspec.msgpack.encode([config, base_url])).hexdigest()[:12]


class Broker(Protocol):
    """What the session needs of a broker (AlpacaBroker satisfies it)."""

    def submit(
        self,
        order: OrderSubmitted,
        *,
        time_in_force: str = "day",
        trail_percent: float | None = None,
        trail_price: float | None = None,
    ) -> BrokerOrder: ...

    def order(self, client_order_id: str) -> BrokerOrder: ...

    def cancel(self, client_order_id: str) -> None: ...

    def replace_stop(self, client_order_id: str, stop_price: float) -> bool:
        """Move a working stop order to ``stop_price`` (False: it is no longer working)."""
        ...

    def positions(self) -> dict[str, float]: ...

    def await_orders(self, client_order_ids: list[str]) -> bool:
        """Wait briefly until a trade-update stream says these orders ended (False: no stream)."""
        ...

    def trade_updates_trouble(self) -> str:
        """Why the trade-update stream that was asked for is not listening ("" when it is, or is off)."""
        ...


@runtime_checkable
class AssetFlagsBroker(Broker, Protocol):
    """A broker that says which stocks it lets the account short (AlpacaBroker)."""

    def easy_to_borrow(self, symbols: list[str]) -> list[str]: ...


class Feed(Protocol):
    """Completed bars (AlpacaBarFeed and StreamingBarFeed satisfy it)."""

    timeframe: str

    def completed(self, symbols: list[str], after_ns: int, now_ns: int) -> list[LiveBar]: ...


@runtime_checkable
class StreamHealthFeed(Feed, Protocol):
    """An engine session's feed over the shared market-data stream (actors/market_data.py)."""

    def take_market_data_outcome(self) -> tuple[str | None, bool]:
        """The stream's failure since the last call (None: none) and whether it answered at all; the
        cycle turns it into the ``market_data`` outage alert."""
        ...


class Restarted(NamedTuple):
    """A strategy actor that died and was replaced (and re-warmed) during a cycle."""

    symbol: str
    pid: int
    bars: int  # bars it was re-warmed on
    cause: str


class Strategies(Protocol):
    """Where a session's strategies run: in this process, or one StrategyActor per symbol on Ray."""

    def warm(self, bars: list[LiveBar]) -> None:
        """Feed history (indicators only: decisions on it were made, or not, before)."""
        ...

    def decide(self, bar: LiveBar) -> Decision: ...

    def actors(self) -> list[dict[str, Any]]:
        """Health of each strategy actor: symbol, pid, alive, restarts ([] in-process)."""
        ...

    def take_restarts(self) -> list[Restarted]:
        """Actors replaced since the last call, for the session to log."""
        ...


class LocalStrategies:
    """One incremental strategy per symbol, in this process (the engine uses Ray actors instead)."""

    def __init__(self, name: str, params: dict[str, Any], symbols: Sequence[str]) -> None:
        strategy = make_strategy(name, params)
        self._strategy = strategy
        self._live = {s: strategy.live() for s in symbols}

    def warm(self, bars: list[LiveBar]) -> None:
        """Feed history to the indicators."""
        for bar in bars:
            self.decide(bar)

    def decide(self, bar: LiveBar) -> Decision:
        """The strategy's side on ``bar``, its indicator values and its reason."""
        side, values = self._live[bar.symbol].on_bar(bar.open, bar.high, bar.low, bar.close, bar.volume)
        return side, values, self._strategy.describe(side, values) if side else ""

    def actors(self) -> list[dict[str, Any]]:
        """No actors in-process."""
        return []

    def take_restarts(self) -> list[Restarted]:
        """Nothing is ever replaced in-process."""
        return []


class CycleReport(NamedTuple):
    """What one cycle did."""

    cycle: int
    ts: int
    bars: int
    events: int
    orders: int
