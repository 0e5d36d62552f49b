"""`tape check` on portfolio strategies: cross-symbol look-ahead, equal forms, determinism, contract."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import tape as tape_api
from tests.conftest import TapeRunner

PEEKING = '''
import numpy as np
import tape


class PeeksAtTomorrow(tape.PortfolioStrategy):
    """Holds the first symbol when the SECOND symbol's close rises tomorrow (a look-ahead)."""

    def weights(self, panel):
        close = panel.close
        w = np.zeros(close.shape)
        w[:-1, 0] = np.where(close[1:, 1] > close[:-1, 1], 0.5, 0.0)
        return w
'''

INCREMENTAL = '''
from collections import deque

import numpy as np
import tape


class LastReturnLeader(tape.PortfolioStrategy):
    """All in the symbol with the best one-bar return, written one row at a time."""

    def warmup(self):
        return 1

    def start(self):
        self.previous = None

    def on_bars(self, section):
        width = section.close.shape[0]
        if self.previous is None:
            self.previous = section.close
            return np.full(width, np.nan), {"score": np.full(width, np.nan)}
        score = section.close / self.previous - 1.0
        self.previous = section.close
        w = np.zeros(width)
        valid = section.tradable & np.isfinite(score)
        if valid.any():
            w[int(np.argmax(np.where(valid, score, -np.inf)))] = 1.0
        return w, {"score": np.where(valid, score, np.nan)}
'''


def _write(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def test_a_strategy_reading_another_symbols_tomorrow_fails_naming_row_and_symbols(
    tape: TapeRunner, tmp_path: Path
) -> None:
    spec = _write(tmp_path, "peek.py", PEEKING) + ":PeeksAtTomorrow"
    result = tape("check", spec)
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if "no look-ahead" in x)
    assert "FAIL" in line and "weight of AAPL" in line and "AMD's bars from" in line, line


def test_the_peeking_strategy_is_refused_before_a_backtest(tape: TapeRunner, tmp_path: Path) -> None:
    from tests.conftest import assert_clean_failure

    spec = _write(tmp_path, "peek.py", PEEKING) + ":PeeksAtTomorrow"
    result = tape("backtest", "--universe", "sp500_20", "--strategy", spec, "--no-files")
    assert_clean_failure(result, "no look-ahead failed", "AMD")


@pytest.mark.parametrize("name", ["momentum", "inverse_vol"])
def test_the_built_in_portfolio_strategies_pass_every_check(name: str) -> None:
    found = tape_api.check(name)
    assert found["passed"].all(), found.to_dict()


def test_an_incremental_portfolio_strategy_passes_with_its_derived_vectorised_form(tmp_path: Path) -> None:
    spec = _write(tmp_path, "leader.py", INCREMENTAL) + ":LastReturnLeader"
    found = tape_api.check(spec, symbols=["AAPL", "MSFT", "XOM"])
    assert found["passed"].all(), found.to_dict()
