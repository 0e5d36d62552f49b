"""`tape reconcile`: a session on the Alpaca emulator against its re-run on the model, every cent of
the gap attributed to a cause."""

from __future__ import annotations

import json
from pathlib import Path

from tape.events.reconcile import CAUSES
from tape.store.reconcile import attribution_json, reconcile
from tests.test_live import live_run  # noqa: F401 - the emulator session fixture


def _reconciled(log_path: Path) -> dict:
    attribution, outcome = reconcile(log_path, "live-test")
    return attribution_json(attribution, outcome)


def test_the_causes_sum_to_the_gap_to_the_cent(live_run) -> None:  # noqa: F811
    market, start, workdir = live_run
    market.emulator.reject_next_orders(1)
    start("2024-07-03 12:30")
    out = _reconciled(workdir / "tape.db")
    Path("/tmp/whatif_rec.json").write_text(json.dumps(out, indent=1))
    assert set(out["causes"]) == set(CAUSES)
    assert round(sum(out["causes"].values()), 2) == out["gap"] == round(out["live_pnl"] - out["model_pnl"], 2)
    assert out["causes"]["rejected_canceled_expired"] != 0
