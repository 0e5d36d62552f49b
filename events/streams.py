"""Stream names: where each event of a run is filed.

run/<run_id>                      RunStarted, RunDerived, BarsRecorded, EquityMarked, RunEnded, alerts
run/<run_id>/portfolio            intents, risk decisions, orders, fills, positions
run/<run_id>/<SYMBOL>/<strategy>  the strategy's signals
run/<run_id>/bars/<SYMBOL>        live or replayed bars (backtests log a data fingerprint instead)
ops/notes                         operator notes
"""

from __future__ import annotations

from tape.events.schema import BarReceived, Event, Signal, kind_of

RUN_LEVEL_KINDS = frozenset(
    {
        "run_started",
        "run_ended",
        "equity_marked",
        "alert",
        "cycle_completed",
        "actor_started",
        "actor_stopped",
        "backtest_summary",
        "run_derived",
        "bars_recorded",
    }
)


def run_stream(run_id: str) -> str:
    """The run's control stream."""
    return f"run/{run_id}"


def portfolio_stream(run_id: str) -> str:
    """The run's portfolio stream: the only place orders are decided."""
    return f"run/{run_id}/portfolio"


def strategy_stream(run_id: str, symbol: str, strategy: str) -> str:
    """One symbol-strategy pair's decisions."""
    return f"run/{run_id}/{symbol}/{strategy}"


def bars_stream(run_id: str, symbol: str) -> str:
    """Bars a live or replayed run received for one symbol."""
    return f"run/{run_id}/bars/{symbol}"


def route(run_id: str, event: Event, kind: str) -> str:
    """The stream an event of a run belongs to."""
    if isinstance(event, Signal):
        return strategy_stream(run_id, event.symbol, event.strategy)
    if isinstance(event, BarReceived):
        return bars_stream(run_id, event.symbol)
    if kind in RUN_LEVEL_KINDS:
        return run_stream(run_id)
    return portfolio_stream(run_id)


_RUN_LEVEL_CLASSES: dict[type, bool] = {}


def route_of(run_id: str, event: Event) -> str:
    """:func:`route` keyed by the event's class (what a writer calls once per event)."""
    cls = event.__class__
    if cls is Signal:
        return f"run/{run_id}/{event.symbol}/{event.strategy}"  # type: ignore[attr-defined]
    if cls is BarReceived:
        return f"run/{run_id}/bars/{event.symbol}"  # type: ignore[attr-defined]
    run_level = _RUN_LEVEL_CLASSES.get(cls)
    if run_level is None:
        run_level = _RUN_LEVEL_CLASSES[cls] = kind_of(event) in RUN_LEVEL_KINDS
    return f"run/{run_id}" if run_level else f"run/{run_id}/portfolio"
