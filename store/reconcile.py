"""`tape reconcile`: a paper or live session against its re-run on the model, the gap by cause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tape.events.errors import DataError
from tape.events.reconcile import Attribution, attribute
from tape.events.report import market_time
from tape.store.whatif import WhatIfOutcome, logged_variant, prepare, record, variant_events


def reconcile(log_path: Path, run: str) -> tuple[Attribution, WhatIfOutcome]:
    """Re-run session ``run`` unchanged on the model (logged as its derived run, or read back) and
    attribute the live-vs-model P&L gap by cause."""
    variant = prepare(log_path, run, lambda config: (config, {}), data_path=None)
    if variant.origin.mode not in ("live", "paper"):
        raise DataError(
            f"run {variant.origin.run_id} is a {variant.origin.mode} run; reconcile explains paper or live "
            "sessions against the model (for other runs: tape whatif)"
        )
    stored = logged_variant(log_path, variant.run_id)
    events = stored or variant_events(variant)
    outcome = record(log_path, variant, events, duplicate=bool(stored))
    return attribute(variant.origin_events, outcome.derived_events), outcome


def attribution_json(attribution: Attribution, outcome: WhatIfOutcome) -> dict[str, Any]:
    """What ``tape reconcile --json`` prints: money in dollars, exact to the cent."""
    timeframe = outcome.original.timeframe
    return {
        "run_id": outcome.original.run_id,
        "model_run_id": outcome.derived.run_id,
        "live_pnl": attribution.live_pnl / 100,
        "model_pnl": attribution.model_pnl / 100,
        "gap": attribution.gap / 100,
        "causes": {k: v / 100 for k, v in attribution.causes.items()},
        "trades": [
            {**row, "decided": market_time(int(row["decided_ts"]), timeframe)}  # type: ignore[call-overload]
            for row in attribution.per_trade
        ],
    }
