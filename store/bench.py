"""`tape bench log`: how fast the log appends (batched and durable) and replays, on synthetic events.

The events are the mix a backtest writes (signal, intent, risk, order, fill, position) in the
streams a backtest uses, generated before the clock starts: the figures time the log, not the generator.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable

import apsw

from tape.events.fold import fold_positions
from tape.events.schema import (
    Event,
    Fill,
    OrderIntent,
    OrderSubmitted,
    PositionClosed,
    PositionOpened,
    RiskAccepted,
    Signal,
)
from tape.events.streams import portfolio_stream, strategy_stream
from tape.store.log import EventLog, NewEvent

MINUTE = 60_000_000_000


def _entry_events(run_id: str, symbol: str, trip: int) -> list[Event]:
    """The opening half of round trip ``trip``: signal, intent, risk check, order, fill, position."""
    t0, price = (trip * 20) * MINUTE, 100.0 + (trip % 97) * 0.05
    iid, oid = f"{run_id}-i{2 * trip}", f"{run_id}-o{2 * trip}"
    fill_price = price * 1.0005
    return [
        Signal(
            ts=t0,
            symbol=symbol,
            strategy="sma_cross",
            side="buy",
            price=price,
            values={"sma_short": price + 0.01, "sma_long": price},
        ),
        OrderIntent(
            ts=t0,
            intent_id=iid,
            symbol=symbol,
            strategy="sma_cross",
            side="buy",
            qty=100.0,
            reason="entry",
            ref_price=price,
        ),
        RiskAccepted(
            ts=t0,
            intent_id=iid,
            symbol=symbol,
            qty=100.0,
            checks={"equity": 100_000.0, "risk_amount": 2000.0, "open_positions": 0.0},
        ),
        OrderSubmitted(ts=t0, client_order_id=oid, intent_id=iid, symbol=symbol, side="buy", qty=100.0),
        Fill(
            ts=t0 + MINUTE,
            client_order_id=oid,
            exec_id=oid,
            symbol=symbol,
            side="buy",
            qty=100.0,
            price=fill_price,
            commission=2.5,
            slippage=price * 0.05,
            reason="entry",
        ),
        PositionOpened(
            ts=t0 + MINUTE,
            symbol=symbol,
            strategy="sma_cross",
            qty=100.0,
            entry_price=fill_price,
            stop_price=price * 0.95,
            take_profit_price=price * 1.1,
            entry_commission=2.5,
        ),
    ]


def _exit_events(run_id: str, symbol: str, trip: int) -> list[Event]:
    """The closing half of round trip ``trip``: signal, intent, order, fill, position closed."""
    t0, price = (trip * 20) * MINUTE, 100.0 + (trip % 97) * 0.05
    iid, xid = f"{run_id}-i{2 * trip + 1}", f"{run_id}-o{2 * trip + 1}"
    exit_ts, exit_price = t0 + 11 * MINUTE, price + 0.19
    return [
        Signal(
            ts=t0 + 10 * MINUTE,
            symbol=symbol,
            strategy="sma_cross",
            side="sell",
            price=price + 0.2,
            values={"sma_short": price, "sma_long": price + 0.01},
        ),
        OrderIntent(
            ts=t0 + 10 * MINUTE,
            intent_id=iid,
            symbol=symbol,
            strategy="sma_cross",
            side="sell",
            qty=100.0,
            reason="signal",
            ref_price=price + 0.2,
        ),
        OrderSubmitted(
            ts=t0 + 10 * MINUTE, client_order_id=xid, intent_id=iid, symbol=symbol, side="sell", qty=100.0
        ),
        Fill(
            ts=exit_ts,
            client_order_id=xid,
            exec_id=xid,
            symbol=symbol,
            side="sell",
            qty=100.0,
            price=exit_price,
            commission=2.5,
            slippage=price * 0.05,
            reason="signal",
        ),
        PositionClosed(
            ts=exit_ts,
            symbol=symbol,
            strategy="sma_cross",
            qty=100.0,
            entry_ts=t0 + MINUTE,
            entry_price=price * 1.0005,
            exit_price=exit_price,
            exit_reason="signal",
            gross_pnl=14.0,
            commission=5.0,
            net_pnl=9.0,
        ),
    ]


def synthetic_events(n: int, run_id: str = "bench0001", symbol: str = "SYN") -> list[NewEvent]:
    """``n`` events shaped like a backtest's round trips, with the ids a backtest would give them."""
    strat, port = strategy_stream(run_id, symbol, "sma_cross"), portfolio_stream(run_id)
    out: list[NewEvent] = []
    trip = 0
    while len(out) < n:
        for event in (*_entry_events(run_id, symbol, trip), *_exit_events(run_id, symbol, trip)):
            stream = strat if isinstance(event, Signal) else port
            out.append(NewEvent(stream, event, f"{run_id}:{len(out) + 1:08d}"))  # as run_items numbers them
        trip += 1
    return out[:n]


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_log(
    n: int = 1_000_000, batch: int = 10_000, durable_n: int = 2_000, directory: str | None = None
) -> dict[str, float | int | str]:
    """Measure batched appends, durable single appends and replay; returns the figures."""
    items = synthetic_events(n)
    with tempfile.TemporaryDirectory(dir=directory, prefix="tape-bench-") as tmp:
        path = os.path.join(tmp, "bench.db")
        with EventLog.create(path) as log:
            batches = [items[i : i + batch] for i in range(0, n, batch)]
            batched_s = _timed(lambda: [log.append_batch(b) for b in batches])

            def replay() -> None:
                fold_positions(log.events())

            replay_s = _timed(replay)
            # The SQL views' projection is caught up after appends (on close), not inside them:
            # timed on its own so its cost is visible rather than hidden in the append figure.
            views_s = _timed(log.sync_views)

        durable_path = os.path.join(tmp, "durable.db")
        with EventLog.create(durable_path, durable=True) as dlog:
            singles = synthetic_events(durable_n, run_id="bench0002")
            durable_s = _timed(lambda: [dlog.append_batch([it]) for it in singles])

    return {
        "events": n,
        "batch_size": batch,
        "batched_append_per_s": round(n / batched_s),
        "durable_append_per_s": round(durable_n / durable_s),
        "replay_per_s": round(n / replay_s),
        "views_sync_per_s": round(n / views_s),
        "sqlite": apsw.sqlite_lib_version(),
        "python": platform.python_version(),
        "cpus": os.cpu_count() or 0,
    }
