"""`tape whatif --grid`: variants of a run as Ray tasks, ranked, each one exactly what a single
what-if with the same change gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import tape as api
from tests.conftest import TapeRunner, assert_clean_failure

STOPS = [2.0, 3.0, 5.0, 8.0]


def test_a_grid_of_four_stops_runs_on_ray_ranks_and_each_row_reruns_exactly(
    ray_session: None, tmp_path: Path
) -> None:
    log_path, copy = tmp_path / "tape.db", tmp_path / "copy.db"
    origin = api.backtest("AAPL", start="2004-01-01", end="2005-12-31", log=log_path).run_id
    shutil.copy(log_path, copy)  # the origin alone: each row is re-run there on its own
    ranked = api.whatif_grid(origin, {"stop_loss": STOPS}, objective="pnl", log=log_path)
    assert sorted(o.link.changes["stop_loss"] for o in ranked) == STOPS
    pnls = [o.derived.metrics["total_pnl"] for o in ranked]
    assert pnls == sorted(pnls, reverse=True) and len(set(pnls)) > 1
    assert all(o.link.derived_from == origin and not o.duplicate for o in ranked)
    for row in ranked:
        single = api.whatif(origin, set=row.link.changes, log=copy)
        assert single.derived.run_id == row.derived.run_id
        assert single.derived.trades == row.derived.trades
        assert single.derived.metrics == row.derived.metrics


def test_grid_and_set_together_are_refused(tape: TapeRunner) -> None:
    result = tape("whatif", "abcd", "--grid", "stop_loss=2,3", "--set", "take_profit=5")
    assert result.returncode == 2
    assert_clean_failure(result, "--set or as --grid")


def test_a_grid_of_an_unknown_key_lists_the_valid_keys(tape: TapeRunner) -> None:
    result = tape("whatif", "abcd", "--grid", "stops=2,3")
    assert result.returncode == 2
    assert_clean_failure(result, "unknown key 'stops'", "stop_loss")
