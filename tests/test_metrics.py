"""Every metric pinned on a hand-made set of trades and equity marks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tape.events.metrics import Mark, Trade, compute_metrics, sharpe_ratio, sortino_ratio, streaks

NETS = [100.0, -50.0, 200.0, -25.0, -25.0]
EQUITY = [100_100.0, 100_050.0, 100_250.0, 100_225.0, 100_200.0]


def _trade(net: float) -> Trade:
    return Trade(
        symbol="AAA",
        strategy="s",
        entry_ts=0,
        entry_price=10.0,
        exit_ts=1,
        exit_price=10.0,
        qty=1,
        gross_pnl=net + 5.0,
        commission=5.0,
        pnl=net,
        exit_reason="signal",
        slippage=0.5,
    )


def _metrics() -> dict:
    marks = [
        Mark(ts=k, equity=e, drawdown=dd, drawdown_pct=dd / pk * 100, bars=10, bars_in_market=in_mkt)
        for k, (e, dd, pk, in_mkt) in enumerate(
            zip(
                EQUITY,
                [0, 50, 0, 25, 50],
                [100_100, 100_100, 100_250, 100_250, 100_250],
                [5, 10, 5, 0, 0],
                strict=True,
            )
        )
    ]
    return compute_metrics(
        start_equity=100_000.0,
        trades=[_trade(n) for n in NETS],
        marks=marks,
        benchmark=[(10.0, 12.0), (20.0, 18.0)],
        periods_per_year=252,
    )


def test_counts_and_pnl() -> None:
    m = _metrics()
    assert (m["total_trades"], m["num_wins"], m["num_losses"]) == (5, 2, 3)
    assert (m["total_pnl"], m["gross_pnl"], m["total_commission"]) == (200.0, 225.0, 25.0)
    assert m["total_slippage"] == 2.5


def test_return_and_equity() -> None:
    m = _metrics()
    assert m["final_equity"] == 100_200.0
    assert m["return_pct"] == 0.2


def test_win_rate_and_averages() -> None:
    m = _metrics()
    assert m["win_rate"] == 40.0
    assert (m["avg_win"], m["avg_loss"]) == (150.0, -33.33)
    assert (m["largest_win"], m["largest_loss"]) == (200.0, -50.0)


def test_profit_factor_is_gross_wins_over_gross_losses() -> None:
    assert _metrics()["profit_factor"] == 3.0


def test_streaks() -> None:
    m = _metrics()
    assert (m["max_consecutive_wins"], m["max_consecutive_losses"]) == (1, 2)
    assert streaks([True, True, False, True, True, True, False, False]) == (3, 2)


def test_drawdown_recovery_and_exposure() -> None:
    m = _metrics()
    assert m["max_drawdown"] == 50.0
    assert m["max_drawdown_pct"] == round(50 / 100_100 * 100, 4)  # the deeper of the two 50 $ dips
    assert m["recovery_factor"] == 4.0  # 200 net / 50 max drawdown
    assert m["exposure_pct"] == 40.0  # 20 of 50 bars in the market


def test_buy_and_hold_is_the_equal_weighted_return_of_the_symbols() -> None:
    assert _metrics()["buy_hold_return_pct"] == 5.0  # (+20 % and -10 %) / 2


def test_sharpe_and_sortino_match_numpy() -> None:
    equity = np.array([100_000.0, *EQUITY])
    r = equity[1:] / equity[:-1] - 1
    sharpe = r.mean() / r.std(ddof=1) * math.sqrt(252)
    sortino = r.mean() / math.sqrt(np.mean(np.minimum(r, 0) ** 2)) * math.sqrt(252)
    m = _metrics()
    assert m["sharpe"] == round(sharpe, 4)
    assert m["sortino"] == round(sortino, 4)


def test_undefined_ratios_are_none_not_infinite() -> None:
    assert sharpe_ratio([0.01, 0.01, 0.01], 252) is None
    assert sortino_ratio([0.01, 0.02], 252) is None
    m = compute_metrics(
        start_equity=1000.0, trades=[_trade(10.0)], marks=[], benchmark=[], periods_per_year=252
    )
    assert m["profit_factor"] is None and m["recovery_factor"] is None


def test_no_trades_gives_zero_counts() -> None:
    m = compute_metrics(start_equity=1000.0, trades=[], marks=[], benchmark=[], periods_per_year=252)
    assert (m["total_trades"], m["win_rate"], m["total_pnl"], m["return_pct"]) == (0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("digits", [2])
def test_money_is_reported_to_the_cent(digits: int) -> None:
    m = _metrics()
    for key in ("total_pnl", "gross_pnl", "avg_win", "avg_loss", "max_drawdown", "final_equity"):
        assert round(m[key], digits) == m[key]
