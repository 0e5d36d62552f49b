"""`tape reconcile`: a paper or live session against its re-run on the model, the gap by cause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tape.events.errors import DataError
from tape.events.reconcile import Attribution, attribute
from tape.events.report import market_time
from tape.events.schema import Event
from tape.store.whatif import Variant, WhatIfOutcome, logged_variant, prepare, record, variant_events

RECONCILED_MODES = ("live", "paper")


def reconcile(log_path: Path, run: str) -> tuple[Attribution, WhatIfOutcome]:
    """Re-run session ``run`` unchanged on the model (logged as its derived run, or read back) and
    attribute the live-vs-model P&L gap by cause."""
    variant, events, stored = _model_run(log_path, run)
    if variant.origin.mode not in RECONCILED_MODES:
        raise DataError(
            f"run {variant.origin.run_id} is a {variant.origin.mode} run; reconcile explains paper or live "
            "sessions against the model (for other runs: tape whatif)"
        )
    outcome = record(log_path, variant, events, duplicate=stored)
    return attribute(variant.origin_events, outcome.derived_events), outcome


def reconcile_section(log_path: Path, run: str) -> dict[str, Any]:
    """The live-vs-model table of ``tape report`` for a paper or live session, computed without writing
    to the log (``tape reconcile`` logs the model run); ``{"unavailable": why}`` when the log cannot
    re-run the session (one from before sessions recorded their bars)."""
    try:
        variant, events, _ = _model_run(log_path, run)
    except DataError as exc:
        return {"unavailable": str(exc)}
    attribution = attribute(variant.origin_events, events)
    return _table(attribution, variant.origin.run_id, variant.run_id, variant.origin.timeframe)


def _model_run(log_path: Path, run: str) -> tuple[Variant, list[Event], bool]:
    """Session ``run`` unchanged on the model: the variant, its events (read back from the log when a
    reconcile logged them before, else computed) and whether they were read back."""
    variant = prepare(log_path, run, lambda config: (config, {}), data_path=None)
    stored = logged_variant(log_path, variant.run_id)
    return variant, stored or variant_events(variant), bool(stored)


def attribution_json(attribution: Attribution, outcome: WhatIfOutcome) -> dict[str, Any]:
    """What ``tape reconcile --json`` prints: money in dollars, exact to the cent."""
    return _table(attribution, outcome.original.run_id, outcome.derived.run_id, outcome.original.timeframe)


def _table(attribution: Attribution, run_id: str, model_run_id: str, timeframe: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "model_run_id": model_run_id,
        "live_pnl": attribution.live_pnl / 100,
        "model_pnl": attribution.model_pnl / 100,
        "gap": attribution.gap / 100,
        "causes": {k: v / 100 for k, v in attribution.causes.items()},
        "trades": [
            {**row, "decided": market_time(int(row["decided_ts"]), timeframe)}  # type: ignore[call-overload]
            for row in attribution.per_trade
        ],
    }
