"""`tape check` on the bundled data: load the strategy, read the bars, run the pure checks.

The quick form (before a backtest, optimisation or trade of a user's strategy) runs on the first
symbol's first bars only; the full form on every bundled symbol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tape.events.errors import StrategyError
from tape.events.strategies import LOADED, REGISTRY, install, make_strategy
from tape.events.strategy_checks import CHECKS, CheckResult, check_all
from tape.store.strategy_loader import as_user_error, load_strategy

QUICK_BARS = 400  # bars of the quick check (one symbol)
EQUALITY_BARS = 300  # bars the forms are compared on when the incremental form is derived (O(n^2))
CHECK_DATASET = "sample"


def check_strategy(
    spec: str,
    params: Mapping[str, Any] | None = None,
    symbols: Sequence[str] | None = None,
    *,
    quick: bool = False,
    data_path: Path | None = None,
) -> list[CheckResult]:
    """Prove no look-ahead, equal forms, determinism and the output contract of a strategy on the
    bundled daily sample (``symbols`` narrows it). Bad names or parameters raise before any check."""
    from tape.store.market import load_many, sample_symbols

    code = load_strategy(spec)
    made = make_strategy(code.spec, params)  # bad parameters: one clear error, not four failed checks
    if made.output == "weights":
        return check_portfolio_strategy(code.spec, params, symbols, quick=quick, data_path=data_path)
    chosen = list(symbols) if symbols else sample_symbols()
    series = load_many(chosen, data_path=data_path, dataset=CHECK_DATASET)
    if quick:
        series = [series[0].take(0, min(len(series[0]), QUICK_BARS))]
    incremental = type(make_strategy(code.spec, params)).forms()[1]
    return check_all(
        lambda: make_strategy(code.spec, params),
        series,
        cuts=3 if quick else 5,
        equality_bars=None if incremental else EQUALITY_BARS,
        on_error=_user_message,
        only=CHECKS[:2] if quick else CHECKS,
    )


PORTFOLIO_DATASET = "sp500_20"
PORTFOLIO_ROWS = 600  # rows after the warm-up a portfolio strategy is checked on
PORTFOLIO_EQUALITY_ROWS = 80  # rows after the warm-up its forms are compared on when one is derived


def check_portfolio_strategy(
    spec: str,
    params: Mapping[str, Any] | None,
    symbols: Sequence[str] | None,
    *,
    quick: bool = False,
    data_path: Path | None = None,
) -> list[CheckResult]:
    """The portfolio checks (cross-symbol look-ahead first) on the bundled sp500_20 universe (its
    first warm-up + 600 rows; ``symbols`` narrows it)."""
    from tape.events.panel import panel_of
    from tape.events.portfolio_checks import check_portfolio
    from tape.store.market import bundled_symbols, load_many

    make = lambda: make_strategy(spec, params)  # noqa: E731 - a fresh instance per evaluation
    warmup = make().warmup()
    chosen = list(symbols) if symbols else bundled_symbols(PORTFOLIO_DATASET)
    panel = panel_of(load_many(chosen, data_path=data_path, dataset=PORTFOLIO_DATASET))
    panel = panel.upto(min(len(panel), warmup + (PORTFOLIO_ROWS // 3 if quick else PORTFOLIO_ROWS)) - 1)
    derived = not type(make()).forms()[1]
    try:
        return check_portfolio(
            make,  # type: ignore[arg-type]
            panel,
            cuts=3,
            equality_rows=warmup + PORTFOLIO_EQUALITY_ROWS if derived else None,
        )
    except Exception as exc:
        message = _user_message(exc)
        if message is None:
            raise
        return [CheckResult(CHECKS[0], False, message)]


class StrategyCheckFailed(StrategyError):
    """A user's strategy failed the quick check a run starts with."""


def check_before_run(spec: str, params: Mapping[str, Any] | None, *, skip: bool) -> None:
    """Before a backtest, optimisation or trade of a user's strategy: the quick look-ahead and
    equality checks, refusing the run with the first offending bar. ``skip`` (--no-check) is
    recorded with the strategy's origin on the run."""
    if spec in REGISTRY or spec not in LOADED:
        return
    cls, origin = LOADED[spec]
    if skip:
        install(spec, cls, {**origin, "check": "skipped (--no-check)"})
        return
    failed = failed_checks(check_strategy(spec, params, quick=True))
    if failed:
        raise StrategyCheckFailed(
            f"strategy refused by the quick check: {failed} "
            "(tape check for the full report; --no-check to skip)"
        )
    install(spec, cls, {**origin, "check": "quick check passed"})


def failed_checks(results: Sequence[CheckResult]) -> str:
    """One line naming every failed check and its first offending bar ("" when all passed)."""
    return "; ".join(f"{r.name} failed: {r.detail}" for r in results if not r.passed)


def _user_message(exc: Exception) -> str | None:
    error = as_user_error(exc)
    return None if error is None else str(error)


__all__ = ["CheckResult", "StrategyCheckFailed", "check_before_run", "check_strategy", "failed_checks"]
