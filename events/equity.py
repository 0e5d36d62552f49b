"""A session's equity, its peak and its deepest drawdown, marked (EquityMarked) at the session's end.

The backtest loop feeds it timestamp by timestamp or in bulk; the rebalance loop one row at a time.
"""

from __future__ import annotations

import numpy as np

from tape.events.portfolio_state import PortfolioState
from tape.events.schema import EquityMarked


class SessionEquity:
    """Equity, its peak and the current session's drawdown, updated at the end of every timestamp.

    Equity is recomputed only while something can move it (open positions, or cash changed since the
    last look); the session's figures go out on EquityMarked and restart.
    """

    __slots__ = ("bars", "drawdown", "drawdown_pct", "equity", "in_market", "peak", "seen_cash")

    def __init__(self, cash: float, cash_cents: int = 0) -> None:
        self.equity = self.peak = cash
        self.seen_cash = cash_cents
        self.drawdown = self.drawdown_pct = 0.0
        self.bars = self.in_market = 0

    def step(self, state: PortfolioState, last_close: dict[str, float]) -> None:
        """One timestamp has ended."""
        self.bars += 1
        if state.positions or state.cash_cents != self.seen_cash:
            self.seen_cash = state.cash_cents
            self._add([state.equity(last_close)])
            if state.positions:
                self.in_market += 1

    def flat(self, state: PortfolioState, count: int) -> None:
        """``count`` timestamps have ended without positions and with the cash unchanged since the
        first of them (only that one may see a change of cash)."""
        if count:
            self.step(state, {})
            self.bars += count - 1

    def held(self, state: PortfolioState, equity: list[float]) -> None:
        """Timestamps have ended with positions open (and the cash unchanged): their equity."""
        if equity:
            self.bars += len(equity)
            self.in_market += len(equity)
            self.seen_cash = state.cash_cents
            self._add(equity)

    def held_array(self, state: PortfolioState, equity: np.ndarray) -> None:
        """:meth:`held` for many timestamps: the same float operations, a whole array at once (running
        maxima are exact, so their order does not matter)."""
        count = equity.shape[0]
        self.bars += count
        self.in_market += count
        self.seen_cash = state.cash_cents
        peaks = np.maximum(np.maximum.accumulate(equity), self.peak)
        drawdown = peaks - equity
        self.drawdown = max(self.drawdown, float(drawdown.max()))
        self.drawdown_pct = max(self.drawdown_pct, float((drawdown / peaks * 100.0).max()))
        self.peak, self.equity = float(peaks[-1]), float(equity[-1])

    def add(self, equity: float, in_market: bool) -> None:
        """One timestamp has ended with this equity (in the market or not)."""
        self.bars += 1
        self.in_market += in_market
        self._add([equity])

    def _add(self, values: list[float]) -> None:
        """Equity at successive timestamps (at least one): the peak and the worst drawdowns follow."""
        peak, worst, worst_pct = self.peak, self.drawdown, self.drawdown_pct
        for equity in values:
            if equity > peak:
                peak = equity
            drawdown = peak - equity
            if drawdown > worst:
                worst = drawdown
            if drawdown / peak * 100.0 > worst_pct:
                worst_pct = drawdown / peak * 100.0
        self.peak, self.drawdown, self.drawdown_pct = peak, worst, worst_pct
        self.equity = values[-1]

    def mark(self, ts: int, cash: float) -> EquityMarked:
        """The session's EquityMarked event; the session's figures restart."""
        marked = EquityMarked(
            ts=ts,
            equity=self.equity,
            cash=cash,
            peak=self.peak,
            drawdown=self.drawdown,
            drawdown_pct=self.drawdown_pct,
            bars=self.bars,
            bars_in_market=self.in_market,
        )
        self.drawdown = self.drawdown_pct = 0.0
        self.bars = self.in_market = 0
        return marked
