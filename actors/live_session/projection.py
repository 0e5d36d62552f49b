"""What a session shows: its status for `tape status` (with the newest decision) and the trade-log
files (logs/trades_<symbol>_<day>.csv and the daily summaries), all projected from the log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tape.events.schema import Event, OrderSubmitted, RiskRejected, Signal

if TYPE_CHECKING:
    from tape.actors.live_session.session import LiveSession


def decision_of(event: Event) -> dict[str, Any] | None:
    """The decision ``event`` records for `tape status` (a signal, a risk refusal or an order), or None."""
    if isinstance(event, Signal):
        what = f"{event.side} signal at {event.price:g}" + (f" ({event.reason})" if event.reason else "")
    elif isinstance(event, RiskRejected):
        what = f"risk rejected ({event.rule}): {event.message}"
    elif isinstance(event, OrderSubmitted):
        what = f"{event.side} {event.qty:g} {event.order_type} ({event.reason}) {event.client_order_id}"
    else:
        return None
    return {"ts": event.ts, "symbol": event.symbol, "decision": what}


def status(live: LiveSession) -> dict[str, Any]:
    """Positions, cash, P&L and the cycle count, for `tape status`."""
    snapshot = live.session.snapshot()
    snapshot.update(
        run_id=live.run_id,
        cycles=live.cycles,
        orders_sent=live.orders_sent,
        cursor=live.cursor,
        last_cycle_ts=live.last_cycle_ts,
        last_decision=dict(live.last_decision),
    )
    return snapshot


def write_trade_logs(live: LiveSession, root: Path, since: int | None = None) -> list[Path]:
    """Write the run's part of the trade logs under ``root``, from the log (``since``: only the days
    from that timestamp's on)."""
    from tape.store.backtests import replay_report
    from tape.store.trade_logs import write_trade_logs as write

    return write(replay_report(live.log, live.run_id), root, since=since)
