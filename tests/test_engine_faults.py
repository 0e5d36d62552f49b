"""Crash recovery of the live engine: SIGKILL a PortfolioActor, a StrategyActor or the whole engine
process at random moments of a trading session against the Alpaca emulator, over and over.

After each kill the test waits for the replacement (a new pid logged by ActorStarted after the kill)
and for a reconciliation logged after it. At the end: one emulator order per logged OrderSubmitted (no
duplicate order), every emulator execution logged as exactly one Fill (no lost fill), the log's positions
equal the emulator's, every bar decided once and the decisions equal an uninterrupted strategy's on the
same bars, and `tape verify` passes.
"""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tape.actors.alpaca.feed import AlpacaBarFeed
from tape.events.portfolio_state import PortfolioState, evolve
from tape.events.strategies import make_strategy
from tape.store.credentials import AlpacaCredentials
from tape.store.log import EventLog
from tests.alpaca_emulator import AlpacaEmulator
from tests.conftest import TapeRunner
from tests.engine_driver import EngineDriver
from tests.test_live import _ns, _top_level

SYMBOLS = ["AAPL", "MSFT"]
KILLS = 21
END = "2024-07-05 11:00"  # 2024-07-03 (half day) and the morning of the 5th: 61 cycles
FIVE_MINUTES = 300 * 10**9
# The bars that close by the last cycle: 2024-07-03 09:30-12:55 (half day) and 2024-07-05 09:30-10:55.
EXPECTED_BARS = [
    *range(_ns("2024-07-03 09:30"), _ns("2024-07-03 12:55") + 1, FIVE_MINUTES),
    *range(_ns("2024-07-05 09:30"), _ns("2024-07-05 10:55") + 1, FIVE_MINUTES),
]
RECOVERY_CYCLES = 3  # a kill is recovered from within this many cycles (usually the same one)


@pytest.fixture
def engine(tape: TapeRunner, alpaca_emulator: AlpacaEmulator, tmp_path: Path):  # type: ignore[no-untyped-def]
    driver = EngineDriver(tape, alpaca_emulator, tmp_path, begin="2024-07-03 09:00")
    yield driver
    driver.kill_everything()


def _head_seq(log_path: Path) -> int:
    with EventLog.open(log_path, readonly=True) as log:
        return log.head()[0]


def _latest_pid(engine: EngineDriver, target: str, run_id: str) -> int:
    stream = "engine" if target == "engine" else f"run/{run_id}"
    started = [r.event for r in engine.events(stream, "actor_started") if r.event.actor == target]
    return int(started[-1].pid)


def _recovered(engine: EngineDriver, target: str, run_id: str, killed: int, after: int) -> bool:
    """A replacement of the killed actor started (new pid) after seq ``after``, and every affected run
    logged a reconciliation after that."""
    stream = "engine" if target == "engine" else f"run/{run_id}"
    replaced = [
        r
        for r in engine.events(stream, "actor_started")
        if r.seq > after and r.event.actor == target and r.event.pid != killed
    ]
    if not replaced:
        return False
    runs = list(engine.runs.values()) if target == "engine" else [run_id]
    for run in runs:
        if target == "engine":
            portfolios = [
                r
                for r in engine.events(f"run/{run}", "actor_started")
                if r.seq > after and r.event.actor == "portfolio"
            ]
            if not portfolios:
                return False
        if not [r for r in engine.events(f"run/{run}", "reconciled") if r.seq > replaced[0].seq]:
            return False
    return True


def _expected_signals(engine: EngineDriver, run_id: str, symbol: str) -> list[tuple[int, str]]:
    """An uninterrupted strategy fed the run's warm-up window (fetched again through alpaca-py) and every
    bar the run logged: the signals the run must have logged whatever was killed in between."""
    opening = engine.events(f"run/{run_id}", "run_started")[0].event
    fp = opening.data[0]
    emulator = engine.emulator
    credentials = AlpacaCredentials(
        api_key=emulator.key_id,
        secret_key=emulator.secret,
        base_url=emulator.trading_url,
        data_url=emulator.data_url,
    )
    feed = AlpacaBarFeed(credentials, opening.timeframe, retry_wait_seconds=0)
    history = [
        b for b in feed.completed([symbol], fp.start_ts - 1, fp.end_ts + FIVE_MINUTES) if b.ts <= fp.end_ts
    ]
    assert len(history) == fp.rows
    live = make_strategy(opening.strategy, opening.params).live()
    for b in history:
        live.on_bar(b.open, b.high, b.low, b.close, b.volume)
    out = []
    for r in engine.events(f"run/{run_id}/bars/{symbol}", "bar"):
        b = r.event
        side, _ = live.on_bar(b.open, b.high, b.low, b.close, b.volume)
        if side:
            out.append((b.ts, "buy" if side > 0 else "sell"))
    return out


@pytest.mark.faults
def test_sigkilled_actors_and_engine_rebuild_from_the_log_without_duplicate_orders_or_lost_fills(
    engine: EngineDriver,
) -> None:
    rng = np.random.default_rng(20240703)
    started = time.monotonic()
    engine.up()
    for symbol in SYMBOLS:
        engine.spawn(symbol)
    kills: list[dict[str, Any]] = []
    pending: dict[str, Any] | None = None
    targets = ["portfolio"] * 8 + ["strategy"] * 8 + ["engine"] * 5
    rng.shuffle(targets)
    while engine.now < _ns(END):
        ts = engine.next_cycle()
        engine.advance(ts)
        if pending is None and len(kills) < len(targets):
            target = targets[len(kills)]
            symbol = SYMBOLS[int(rng.integers(len(SYMBOLS)))]
            run_id = engine.runs[symbol]
            pid = _latest_pid(engine, target, run_id)
            time.sleep(float(rng.uniform(0.0, 0.15)))  # a random moment of the cycle (fault timing, not sync)
            pending = {
                "target": target,
                "symbol": symbol,
                "pid": pid,
                "seq": _head_seq(engine.log_path),
                "at": ts,
            }
            os.kill(pid, signal.SIGKILL)
            kills.append(pending)
        engine.wait_for_cycle(ts)
        if pending is not None:
            if _recovered(
                engine, pending["target"], engine.runs[pending["symbol"]], pending["pid"], pending["seq"]
            ):
                pending["recovered_at"] = ts
                pending = None
            else:
                assert ts - kills[-1]["at"] < RECOVERY_CYCLES * FIVE_MINUTES, f"no recovery from {kills[-1]}"
    assert pending is None and len(kills) == KILLS
    assert {k["target"] for k in kills} == {"portfolio", "strategy", "engine"}
    engine.down()
    elapsed = time.monotonic() - started

    emulator = engine.emulator
    submitted: list[str] = []
    fills: list[Any] = []
    state = PortfolioState("all", 100_000.0)
    for symbol, run_id in engine.runs.items():
        records = engine.events(f"run/{run_id}")
        events = [r.event for r in records]
        submitted += [e.client_order_id for e in events if type(e).__name__ == "OrderSubmitted"]
        fills += [e for e in events if type(e).__name__ == "Fill"]
        run_state = PortfolioState(run_id, 100_000.0)
        for e in events:
            evolve(run_state, e)
        state.positions.update(run_state.positions)
        bars = [(e.symbol, e.ts) for e in events if type(e).__name__ == "BarReceived"]
        assert len(bars) == len(set(bars))  # no bar decided twice ...
        assert set(bars) == {(symbol, ts) for ts in EXPECTED_BARS}  # ... and none skipped
        signals = [(e.ts, e.side) for e in events if type(e).__name__ == "Signal"]
        assert signals == _expected_signals(engine, run_id, symbol)  # re-warmed strategies decided the same
        final = [e for e in events if type(e).__name__ == "Reconciled"][-1]
        assert final.differences == []
    # No duplicate order: one emulator order per logged decision, each id once.
    at_broker = sorted(o["client_order_id"] for o in _top_level(emulator.orders))
    assert len(submitted) == len(set(submitted))
    refused = [
        r.event.reason for run in engine.runs.values() for r in engine.events(f"run/{run}", "order_rejected")
    ]
    assert sorted(submitted) == at_broker, refused  # e.g. an exit refused while a stale OCO holds the shares
    assert len(at_broker) >= 6
    # No lost fill: every execution at the emulator is in the log, exactly once.
    by_order = {o["id"]: o["client_order_id"] for o in emulator.orders}
    for o in emulator.orders:
        for leg in o.get("legs") or []:
            by_order[leg["id"]] = o["client_order_id"]
    executions: dict[str, list[Any]] = defaultdict(list)
    for execution in emulator.fills:
        executions[by_order[execution.order_id]].append(execution)
    logged = defaultdict(list)
    for fill in fills:
        logged[fill.client_order_id].append(fill)
    assert set(logged) == set(executions)
    for client_order_id, found in logged.items():
        assert len(found) == 1, found
        assert found[0].qty == pytest.approx(sum(e.qty for e in executions[client_order_id]))
    assert len({f.exec_id for f in fills}) == len(fills)
    assert {s: p.qty for s, p in state.positions.items()} == {
        s: q for s, q in emulator.positions.items() if q
    }
    assert engine.run("verify").returncode == 0
    counts = {t: sum(k["target"] == t for k in kills) for t in ("portfolio", "strategy", "engine")}
    print(f"\n{len(kills)} kills {counts}, {len(at_broker)} orders, {len(fills)} fills, {elapsed:.1f} s")
