"""A portfolio strategy's trading session on Ray actors: `tape trade --broker sim --feed replay`.

The card's shape: one actor per symbol takes that symbol's bars and hands on its features (here the
checked bar itself: a portfolio strategy reads prices across symbols); the decision runs where all
symbols meet, in the portfolio actor, which feeds every timestamp's cross-section to the strategy's
incremental form and to the same :class:`~tape.events.portfolio_run.Rebalancer` a backtest runs, and
hands the decisions to the LogWriter. So the session decides exactly what the backtest decides.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tape.actors.engine import ReplayOutcome, session_run_id
from tape.actors.jobs import ensure_ray, shipped_code
from tape.actors.replay_log import logged_events, timestamp_groups
from tape.actors.session_actors import LogWriter
from tape.events.backtest import BacktestConfig, run_ended, run_started
from tape.events.bars import BarSeries
from tape.events.errors import DataError
from tape.events.panel import CrossSection
from tape.events.portfolio_run import PanelRow, Rebalancer
from tape.events.rebalance import check_weights
from tape.events.recorded import bars_recorded
from tape.events.schema import RunEnded
from tape.events.session import feed_order
from tape.events.strategies import make_strategy
from tape.events.strategies.portfolio_base import as_weight_row, incremental
from tape.store.backtests import code_version

PRICES = ("open", "high", "low", "close", "volume")


class SymbolActor:
    """One symbol's bars in, its features out (the bar's prices, refused when not finite)."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bars = 0

    def on_bar(self, bar: dict[str, Any]) -> dict[str, Any]:
        """The features of this bar for the portfolio side."""
        if not all(math.isfinite(bar[k]) for k in PRICES):
            raise DataError(f"{self.symbol}: a bar at {bar['ts']} has a missing price")
        self.bars += 1
        return {k: bar[k] for k in ("symbol", "ts", "day", "last", "session_end", *PRICES)}

    def pid(self) -> int:
        return os.getpid()


class RebalancingPortfolioActor:
    """Where all symbols meet: the strategy's incremental weights, the rebalance, the log."""

    def __init__(
        self, config: BacktestConfig, run_id: str, writer: Any, code: list[Any] | None = None
    ) -> None:
        if code:  # the user's strategy source, shipped with the actor
            from tape.store.strategy_loader import install_codes

            install_codes(code)
        self.strategy = make_strategy(config.strategy, config.params)
        self.symbols = tuple(config.symbols)
        self.index = {s: j for j, s in enumerate(self.symbols)}
        self.stepper = incremental(self.strategy, self.symbols)  # type: ignore[arg-type]
        self.rebalancer = Rebalancer(config, self.symbols, self.strategy, run_id)  # type: ignore[arg-type]
        self.writer = writer

    def process(self, features: list[dict[str, Any]], last: bool) -> int:
        """One timestamp's features (every symbol with a bar at it): decide, then log."""
        import ray

        width = len(self.symbols)
        columns = {k: np.full(width, np.nan) for k in PRICES}
        tradable, ends = np.zeros(width, dtype=bool), np.zeros(width, dtype=bool)
        for bar in features:
            j = self.index[bar["symbol"]]
            for k in PRICES:
                columns[k][j] = bar[k]
            tradable[j], ends[j] = True, bar["last"]
        ts, day = features[0]["ts"], features[0]["day"]
        section = CrossSection(self.symbols, ts, day, **columns, tradable=tradable)
        who = type(self.strategy).__name__
        weights, values = as_weight_row(self.stepper.on_bars(section), width, who)
        check_weights(weights[None, :], tradable[None, :], self.symbols, who)
        row = PanelRow(
            ts, day, columns["open"], columns["close"], tradable, weights, values, ends, last,
            features[-1]["session_end"],
        )  # fmt: skip
        return int(ray.get(self.writer.append.remote(self.rebalancer.step(row))))

    def pid(self) -> int:
        return os.getpid()


def run_portfolio_session(
    config: BacktestConfig, series: Sequence[BarSeries], *, log_path: Path, address: str | None = None
) -> ReplayOutcome:
    """Play ``series`` through the symbol actors and the rebalancing portfolio actor into the log."""
    run_id = session_run_id("sim", config, series)
    logged = logged_events(log_path, run_id)
    if any(isinstance(e, RunEnded) and e.status == "completed" for e in logged):
        return ReplayOutcome(run_id, "already complete")
    if logged:
        raise DataError(f"portfolio session {run_id} is in the log unfinished; this version cannot resume it")
    ray = ensure_ray(address)
    writer = ray.remote(LogWriter).remote(str(log_path), run_id, False)
    opening = run_started(
        config, series, run_id=run_id, mode="sim", code_version=code_version(), label="broker=sim feed=replay"
    )
    # The feed goes in the log with the opening, so `tape whatif` re-runs the session from the log alone.
    ray.get(writer.append.remote([opening, *bars_recorded(series, "feed", opening.ts)]))
    steps = feed_order(list(series))
    groups = timestamp_groups(steps, {s.symbol: s for s in series})
    actors = {s.symbol: ray.remote(SymbolActor).remote(s.symbol) for s in series}
    portfolio = ray.remote(RebalancingPortfolioActor).remote(config, run_id, writer, shipped_code(config))
    try:
        for k, group in enumerate(groups):
            features = ray.get([actors[bar["symbol"]].on_bar.remote(bar) for bar in group])
            ray.get(portfolio.process.remote(features, k == len(groups) - 1))
        ray.get(writer.append.remote([run_ended(series, run_id=run_id, ts=steps[-1].ts, bars=len(steps))]))
    finally:
        try:
            ray.get(writer.close.remote())
        finally:
            for handle in (*actors.values(), portfolio, writer):
                ray.kill(handle)
    return ReplayOutcome(run_id, "new")
