"""Signed target positions: an addition to the Strategy API that derives sides exactly (and back), runs
through the same engine (long, short, flat), and is covered by `tape check` like sides."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from tape.events.backtest import BacktestConfig, run_backtest
from tape.events.risk import RiskConfig
from tape.events.schema import PositionClosed, PositionOpened
from tape.events.strategies.base import (
    BUY,
    FLAT,
    HOLD,
    SELL,
    sides_from_targets,
    targets_from_sides,
)
from tape.store.strategy_check import check_strategy
from tape.store.strategy_loader import load_strategy
from tests.conftest import TapeRunner
from tests.factories import random_walk_bars

TARGETS = """
import numpy as np
from tape import Strategy

class Momentum(Strategy):
    '''Long above the 20-bar mean, short below, flat within 1 % of it.'''
    output = "targets"

    def warmup(self):
        return 20

    def targets(self, bars):
        close = bars.close
        mean = np.full(len(close), np.nan)
        if len(close) >= 20:
            mean[19:] = np.convolve(close, np.ones(20) / 20, mode="valid")
        gap = close / mean - 1.0
        short = np.where(gap < -0.01, -0.5, 0.0)
        return np.where(np.isnan(gap), np.nan, np.where(gap > 0.01, 1.0, short))
"""

SHORT_PEEKS = """
import numpy as np
from tape import BUY, SELL, Strategy

class ShortPeeks(Strategy):
    '''Buys on a causal rule, but sells short when tomorrow's close is lower.'''
    def warmup(self):
        return 2
    def signals(self, bars):
        side = np.zeros(len(bars), dtype=np.int8)
        side[1:][bars.close[1:] > bars.close[:-1] * 1.02] = BUY
        falls = np.zeros(len(bars), dtype=bool)
        falls[:-1] = bars.close[1:] < bars.close[:-1]     # close[i + 1] decides bar i's short
        side[(side == 0) & falls & (np.arange(len(bars)) >= 40)] = SELL
        return side
"""

TARGET_PEEKS = """
import numpy as np
from tape import Strategy

class TargetPeeks(Strategy):
    output = "targets"
    def warmup(self):
        return 1
    def targets(self, bars):
        target = np.zeros(len(bars))
        target[:-1] = np.where(bars.close[1:] < bars.close[:-1], -1.0, 0.0)   # short on tomorrow's fall
        target[:50] = 0.0
        return target
"""


def _write(directory: Path, name: str, source: str) -> str:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def test_targets_become_sides_at_each_change_of_sign() -> None:
    targets = np.array([np.nan, 0.0, 1.0, 0.5, np.nan, -1.0, -1.0, 0.0, 0.0, 0.25])
    out = sides_from_targets(targets, len(targets), "t")
    assert out.side.tolist() == [HOLD, HOLD, BUY, HOLD, HOLD, SELL, HOLD, FLAT, HOLD, BUY]
    assert out.values["size_factor"].tolist() == [0, 0, 1, 0.5, 0.5, 1, 1, 0, 0, 0.25]


def test_sides_and_targets_derive_each_other_exactly() -> None:
    rng = np.random.default_rng(7)
    targets = rng.choice([-1.0, 0.0, 1.0], size=500)
    sides = sides_from_targets(targets, 500, "t").side
    assert np.array_equal(targets_from_sides(sides, "both"), targets)
    again = sides_from_targets(targets_from_sides(sides, "both"), 500, "t").side
    assert np.array_equal(again, sides)


def test_a_sides_strategy_holds_the_positions_its_direction_allows() -> None:
    sides = np.array([BUY, HOLD, SELL, SELL, BUY], dtype=np.int8)
    assert targets_from_sides(sides, "long").tolist() == [1, 1, 0, 0, 1]
    assert targets_from_sides(sides, "short").tolist() == [0, 0, -1, -1, 0]
    assert targets_from_sides(sides, "both").tolist() == [1, 1, -1, -1, 1]


def test_a_target_strategy_passes_check_and_trades_long_short_and_flat(tmp_path: Path) -> None:
    spec = _write(tmp_path, "momentum.py", TARGETS)
    results = check_strategy(spec, symbols=["AAPL"])
    assert all(r.passed for r in results), results
    loaded = load_strategy(spec).spec
    series = [random_walk_bars("AAA", 400, seed=5)]
    risk = RiskConfig(direction="both", shortable="AAA", stop_loss_pct=0, take_profit_pct=0)
    events = run_backtest(BacktestConfig(symbols=["AAA"], strategy=loaded, risk=risk), series, run_id="r")
    opened = [e for e in events if isinstance(e, PositionOpened)]
    closed = [e for e in events if isinstance(e, PositionClosed)]
    assert any(e.qty > 0 for e in opened) and any(e.qty < 0 for e in opened)
    longs = [e.qty for e in opened if e.qty > 0]
    shorts = [-e.qty for e in opened if e.qty < 0]
    assert max(shorts) < max(longs)  # a -0.5 target sizes the short at half the quantity
    assert any(e.exit_reason == "signal" for e in closed)


@pytest.mark.parametrize("source", [SHORT_PEEKS, TARGET_PEEKS], ids=["short-side", "short-target"])
def test_check_fails_a_strategy_whose_short_signal_peeks_at_the_next_bar(
    tape: TapeRunner, tmp_path: Path, source: str
) -> None:
    path = _write(tmp_path, "peeks.py", source)
    result = tape("check", path, "--symbol", "AAPL")
    assert result.returncode == 1, result.stdout
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert any("no look-ahead" in line and "reads the future" in line for line in failed), result.stdout
