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
from tape.events.recorded import received_groups, recorded_series
from tape.events.report import RunReport, fold_run
from tape.events.schema import EquityMarked, Event, RunDerived, RunEnded, RunStarted
from tape.events.session_model import run_session_model
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


class Inputs(NamedTuple):
    """A run's recorded inputs, ready to re-run: where they came from, what the derived id hashes,
    which symbols' data changed since the run, and the model that re-runs them."""

    source: str  # "data": the market-data store, as fingerprinted; "log": bars recorded in the log
    prints: list[Any]
    data_changed: list[str]
    model: Callable[[BacktestConfig, str, str], list[Event]]  # (config, run id, code version) -> events


def derived_run_id(origin: str, config: BacktestConfig, prints: list[Any], version: str) -> str:
    """The derived run's id: a hash of its origin and of what decides it (config, inputs, code)."""
    digest = hashlib.sha256(msgspec.msgpack.encode(["whatif", origin, config, prints, version]))
    return digest.hexdigest()[:16]


def original_run(log_path: Path, run: str) -> tuple[RunStarted, list[Event]]:
    """The origin's RunStarted and every event of it."""
    with EventLog.open(log_path, readonly=True) as log:
        started = find_run(log, run)
        return started, [r.event for r in run_events(log, started.run_id)]


def recorded_inputs(
    started: RunStarted,
    events: list[Event],
    config: BacktestConfig,
    data_path: Path | None,
    loader: Loader | None,
) -> Inputs:
    """The inputs a what-if re-runs: a backtest's from the data its fingerprint names; a replay
    session's feed and a live session's warm-up and received bars from the log alone."""
    if started.mode == "backtest":
        series = (loader or (lambda c: load_config_bars(c, data_path)))(config)
        if not any(len(s) for s in series):
            raise DataError(f"the bars of run {started.run_id} are not in the market-data store any more")
        recorded = {fp.symbol: fp.sha256 for fp in started.data}
        changed = [s.symbol for s in series if recorded.get(s.symbol) != s.fingerprint().sha256]
        prints = [s.fingerprint() for s in series]
        return Inputs(
            "data", prints, changed, lambda c, r, v: run_backtest(c, series, run_id=r, code_version=v)
        )
    if started.mode in ("sim", "replay"):
        feed = recorded_series(events, "feed")
        _need(feed, started)
        prints = [s.fingerprint() for s in feed]
        return Inputs("log", prints, [], lambda c, r, v: run_backtest(c, feed, run_id=r, code_version=v))
    warm, groups = recorded_series(events, "warm_up"), received_groups(events)
    _need(warm, started)
    marked = {e.ts for e in events if isinstance(e, EquityMarked)}
    prints = [[s.fingerprint() for s in warm], [[msgspec.to_builtins(b) for b in g] for g in groups]]
    prints = [hashlib.sha256(msgspec.msgpack.encode(prints)).hexdigest()]
    return Inputs(
        "log",
        prints,
        [],
        lambda c, r, v: run_session_model(c, warm, groups, marked, run_id=r, code_version=v),
    )


def _need(series: list[BarSeries], started: RunStarted) -> None:
    if not series:
        raise DataError(
            f"run {started.run_id} ({started.mode}) was logged before sessions recorded their bars; "
            "it cannot be re-run from the log"
        )


class Variant(NamedTuple):
    """One what-if, prepared: the origin, the changed config, the changes, the inputs and the id."""

    origin: RunStarted
    origin_events: list[Event]
    config: BacktestConfig
    changes: dict[str, Any]
    inputs: Inputs
    run_id: str
    version: str


def prepare(
    log_path: Path, run: str, change: Change, *, data_path: Path | None, loader: Loader | None = None
) -> Variant:
    """Read the origin, apply ``change`` and gather the inputs: everything but running the model."""
    started, original_events = original_run(log_path, run)
    config, changes = change(config_of(started.config))
    inputs = recorded_inputs(started, original_events, config, data_path, loader)
    version = code_version()
    run_id = derived_run_id(started.run_id, config, inputs.prints, version)
    return Variant(started, original_events, config, changes, inputs, run_id, version)


def variant_events(variant: Variant) -> list[Event]:
    """The derived run's events (pure computation, no log): the model's run with its link."""
    events = variant.inputs.model(variant.config, variant.run_id, variant.version)
    link = RunDerived(
        ts=events[0].ts,
        run_id=variant.run_id,
        derived_from=variant.origin.run_id,
        changes=variant.changes,
        inputs=variant.inputs.source,
    )
    return [events[0], link, *events[1:]]


def logged_variant(log_path: Path, run_id: str) -> list[Event]:
    """A derived run already in the log (empty when it is not)."""
    if not log_path.exists():
        return []
    with EventLog.open(log_path, readonly=True) as log:
        stored = [r.event for r in run_events(log, run_id)]
    if stored and not isinstance(stored[-1], RunEnded):
        raise LogError(f"what-if run {run_id} is in {log_path} without its RunEnded; run `tape verify`")
    return stored


def record(log_path: Path, variant: Variant, events: list[Event], *, duplicate: bool) -> WhatIfOutcome:
    """Append a computed derived run (unless it was read back from the log) and compare it."""
    if not duplicate:
        with EventLog.create(log_path) as log:
            log.append_batch(run_items(variant.run_id, events, 1))
    original, derived = fold_run(variant.origin_events), fold_run(events)
    diff = compare_whatif(original, derived, variant.origin_events, events)
    link = next(e for e in events if isinstance(e, RunDerived))
    return WhatIfOutcome(original, derived, link, diff, variant.inputs.data_changed, duplicate, events)


def whatif(
    log_path: Path,
    run: str,
    change: Change,
    *,
    data_path: Path | None,
    loader: Loader | None = None,
) -> WhatIfOutcome:
    """Re-run ``run`` with ``change`` applied to its config, log the derived run, and compare."""
    variant = prepare(log_path, run, change, data_path=data_path, loader=loader)
    stored = logged_variant(log_path, variant.run_id)
    if stored:
        return record(log_path, variant, stored, duplicate=True)
    return record(log_path, variant, variant_events(variant), duplicate=False)


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
        from tape.events.report import market_time

        first = d.original if d.original is not None else d.derived
        divergence = {
            "index": d.index,
            "time": market_time(first.ts, timeframe) if first is not None else "",
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
