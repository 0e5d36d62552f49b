"""`tape whatif`: a run's recorded inputs through changed rules or code, logged as a derived run.

The derived run is a run like any other (its own id, RunStarted ... RunEnded) with a RunDerived event
right after its start naming the origin and the changes. Its id hashes the origin, the new config, the
data and the code, so the same what-if asked twice is read back, never logged twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from tape.events.backtest import BacktestConfig, config_of, run_backtest
from tape.events.bars import BarSeries
from tape.events.errors import DataError
from tape.events.report import RunReport, fold_run
from tape.events.schema import Event, RunDerived, RunEnded, RunStarted
from tape.events.whatif import WhatIfDiff, compare_whatif
from tape.store.backtests import code_version, load_config_bars
from tape.store.log import EventLog, LogError
from tape.store.run_writer import run_items
from tape.store.runs import find_run, run_events

Loader = Callable[[BacktestConfig], list[BarSeries]]
Change = Callable[[BacktestConfig], tuple[BacktestConfig, dict[str, Any]]]


class WhatIfOutcome(NamedTuple):
    """A what-if: both runs' reports and events, the link, and what changed."""

    original: RunReport
    derived: RunReport
    link: RunDerived
    diff: WhatIfDiff
    data_changed: list[str]  # symbols whose data no longer matches the origin's fingerprint
    duplicate: bool  # the same what-if was already in the log
    derived_events: list[Event]


def derived_run_id(origin: str, config: BacktestConfig, series: list[BarSeries], version: str) -> str:
    """The derived run's id: a hash of its origin and of what decides it (config, data, code)."""
    prints = [s.fingerprint() for s in series]
    digest = hashlib.sha256(msgspec.msgpack.encode(["whatif", origin, config, prints, version]))
    return digest.hexdigest()[:16]


def original_run(log_path: Path, run: str) -> tuple[RunStarted, list[Event]]:
    """The origin's RunStarted and every event of it."""
    with EventLog.open(log_path, readonly=True) as log:
        started = find_run(log, run)
        return started, [r.event for r in run_events(log, started.run_id)]


def recorded_inputs(
    started: RunStarted, config: BacktestConfig, data_path: Path | None, loader: Loader | None
) -> tuple[list[BarSeries], str]:
    """The bars a what-if re-runs and where they came from: a backtest's from the data its
    fingerprint names (the store, or the loader of the DataFrames it was given)."""
    if started.mode != "backtest":
        raise DataError(
            f"run {started.run_id} is a {started.mode} session; whatif re-runs backtests (sessions: not yet)"
        )
    series = (loader or (lambda c: load_config_bars(c, data_path)))(config)
    if not any(len(s) for s in series):
        raise DataError(f"the bars of run {started.run_id} are not in the market-data store any more")
    return series, "data"


def whatif(
    log_path: Path,
    run: str,
    change: Change,
    *,
    data_path: Path | None,
    loader: Loader | None = None,
) -> WhatIfOutcome:
    """Re-run ``run`` with ``change`` applied to its config, log the derived run, and compare."""
    started, original_events = original_run(log_path, run)
    config, changes = change(config_of(started.config))
    series, inputs = recorded_inputs(started, config, data_path, loader)
    recorded = {fp.symbol: fp.sha256 for fp in started.data}
    data_changed = [s.symbol for s in series if recorded.get(s.symbol) != s.fingerprint().sha256]
    version = code_version()
    run_id = derived_run_id(started.run_id, config, series, version)
    link = RunDerived(
        ts=min(int(s.ts[0]) for s in series if len(s)),
        run_id=run_id,
        derived_from=started.run_id,
        changes=changes,
        inputs=inputs,
    )
    derived, duplicate = _logged(log_path, run_id, config, series, version, link)
    original_report, derived_report = fold_run(original_events), fold_run(derived)
    diff = compare_whatif(original_report, derived_report, original_events, derived)
    return WhatIfOutcome(original_report, derived_report, link, diff, data_changed, duplicate, derived)


def _logged(
    log_path: Path,
    run_id: str,
    config: BacktestConfig,
    series: list[BarSeries],
    version: str,
    link: RunDerived,
) -> tuple[list[Event], bool]:
    """The derived run's events: read back when already logged, else run and appended whole."""
    with EventLog.create(log_path) as log:
        stored = [r.event for r in run_events(log, run_id)]
        if stored and not isinstance(stored[-1], RunEnded):
            raise LogError(f"what-if run {run_id} is in {log_path} without its RunEnded; run `tape verify`")
        if stored:
            return stored, True
        events = run_backtest(config, series, run_id=run_id, code_version=version)
        events.insert(1, link)
        log.append_batch(run_items(run_id, events, 1))
    return events, False


def link_of(log: EventLog, run_id: str) -> RunDerived | None:
    """A derived run's link to its origin (None for a run that is not a what-if)."""
    for event in log.events(stream=f"run/{run_id}", kinds=("run_derived",)):
        if isinstance(event, RunDerived):
            return event
    return None


def outcome_json(outcome: WhatIfOutcome) -> dict[str, Any]:
    """What ``tape whatif --json`` prints."""
    from tape.events.render import as_dict
    from tape.events.whatif import reason_of

    diff, timeframe = outcome.diff, outcome.derived.timeframe
    divergence = None
    if diff.divergence is not None:
        d = diff.divergence
        divergence = {
            "index": d.index,
            "original": as_dict(d.original) if d.original is not None else None,
            "derived": as_dict(d.derived) if d.derived is not None else None,
            "original_reason": reason_of(d.original),
            "derived_reason": reason_of(d.derived),
        }
    return {
        "run_id": outcome.derived.run_id,
        "derived_from": outcome.link.derived_from,
        "changes": outcome.link.changes,
        "inputs": outcome.link.inputs,
        "duplicate": outcome.duplicate,
        "data_changed": outcome.data_changed,
        "trades": {"original": len(outcome.original.trades), "derived": len(outcome.derived.trades)},
        "trade_changes": [_change_json(c, timeframe) for c in diff.trades],
        "deltas": {k: round(v, 6) for k, v in diff.deltas.items()},
        "original": {k: outcome.original.metrics.get(k) for k in diff.deltas},
        "derived": {k: outcome.derived.metrics.get(k) for k in diff.deltas},
        "first_divergence": divergence,
    }


def _change_json(change: Any, timeframe: str) -> dict[str, Any]:
    from tape.events.report import market_time

    def side(t: Any) -> dict[str, Any] | None:
        if t is None:
            return None
        return {
            "exit": market_time(t.exit_ts, timeframe),
            "exit_price": t.exit_price,
            "qty": t.qty,
            "pnl": round(t.pnl, 2),
            "exit_reason": t.exit_reason,
        }

    return {
        "change": change.change,
        "symbol": change.symbol,
        "entry": market_time(change.entry_ts, timeframe),
        "before": side(change.before),
        "after": side(change.after),
    }
