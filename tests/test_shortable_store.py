"""`tape data shortable`: easy-to-borrow flags kept per symbol in the market-data store, taken by a run
that may go short and declares no --shortable itself, and recorded in that run's config."""

from __future__ import annotations

import json

from tests.conftest import TapeRunner, assert_clean_failure

WINDOW = ("--start", "2005-01-01", "--end", "2006-12-31")


def _both(tape: TapeRunner, *extra: str) -> dict:  # type: ignore[type-arg]
    result = tape("backtest", "AAPL", "GOOG", "--direction", "both", *WINDOW, *extra, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _shorted(summary: dict) -> set[str]:  # type: ignore[type-arg]
    return {t["symbol"] for t in summary["trades"] if t["side"] == "short"}


def _logged(tape: TapeRunner, run_id: str, kind: str) -> list[dict]:  # type: ignore[type-arg]
    shown = tape("log", "show", "-s", f"run/{run_id}*", "-k", kind, "-n", "1000", "--json")
    return [json.loads(row)["event"] for row in shown.stdout.splitlines()]


def test_a_run_that_may_go_short_takes_the_stores_flags_and_records_them(tape: TapeRunner) -> None:
    assert tape("data", "shortable", "AAPL").returncode == 0
    assert tape("data", "shortable", "GOOG", "--no").returncode == 0
    summary = _both(tape)
    assert _shorted(summary) == {"AAPL"}
    refused = [r for r in _logged(tape, summary["run_id"], "risk_rejected") if r["rule"] == "not_shortable"]
    assert refused and {r["symbol"] for r in refused} == {"GOOG"}
    assert "tape data shortable GOOG" in refused[0]["message"]
    (started,) = _logged(tape, summary["run_id"], "run_started")
    assert started["config"]["risk"]["shortable"] == "AAPL"  # the log, not the store, says what was assumed


def test_an_explicit_shortable_list_wins_over_the_store(tape: TapeRunner) -> None:
    tape("data", "shortable", "AAPL")
    assert _shorted(_both(tape, "--shortable", "GOOG")) == {"GOOG"}


def test_stored_flags_leave_a_long_only_run_as_it_was(tape: TapeRunner) -> None:
    before = json.loads(tape("backtest", "AAPL", *WINDOW, "--json").stdout)["run_id"]
    tape("data", "shortable", "AAPL")
    assert json.loads(tape("backtest", "AAPL", *WINDOW, "--json").stdout)["run_id"] == before


def test_listing_the_flags_and_refusing_a_crypto_pair(tape: TapeRunner) -> None:
    tape("data", "shortable", "msft", "AAPL")
    tape("data", "shortable", "GOOG", "--no")
    assert json.loads(tape("data", "shortable", "--json").stdout) == {
        "AAPL": True,
        "GOOG": False,
        "MSFT": True,
    }
    assert_clean_failure(tape("data", "shortable", "BTC/USD"), "crypto pairs are never shorted")
