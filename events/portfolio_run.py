"""The backtest of a portfolio strategy: the universe's panel in, the run's events out.

Per row of the panel (one timestamp), in this order: the working orders fill at their symbols' open,
sells first; the last closes move; a symbol whose bars end is sold at its last close; on a rebalance
row (the first of its period, or a drift past ``drift``) the strategy's weights at the close become
one :class:`~tape.events.schema.Rebalanced` decision and its orders; equity is tracked, and marked at
each session's end. The decision is :func:`decide_rebalance`, the same function a live portfolio runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tape.events.bars import BarSeries
from tape.events.portfolio_book import Book, WorkingOrder
from tape.events.rebalance import (
    Limits,
    capped,
    check_weights,
    drifted,
    held_weights,
    order_quantities,
    schedule,
    target_quantities,
)
from tape.events.schema import EquityMarked, Event, Rebalanced
from tape.events.strategies.portfolio_base import PortfolioStrategy, Weights, weights_of

PROGRESS_EVERY = 4096  # rows between progress callbacks


def limits_of(params: Any) -> Limits:
    """The rebalance limits of a portfolio strategy's parameters (percentages to fractions)."""
    return Limits(
        params.max_weight / 100.0, params.cash_buffer / 100.0, params.min_trade, params.drift / 100.0
    )


def decide_rebalance(
    book: Book,
    *,
    ts: int,
    n: int,
    run_id: str,
    trigger: str,
    targets: np.ndarray,
    values: dict[str, np.ndarray],
    price: np.ndarray,
    last_close: np.ndarray,
    limits: Limits,
) -> tuple[Rebalanced, list[WorkingOrder]]:
    """One rebalance decided at a close: the decision event and its orders (sells first).

    ``targets`` are the strategy's weights (NaN: keep), ``price`` the closes of the symbols with a bar
    now (NaN elsewhere: they cannot trade), ``last_close`` every symbol's latest close (for equity)."""
    symbols = book.symbols
    equity = book.equity(last_close)
    held = book.held
    aimed = capped(targets, limits)
    current = held_weights(held, last_close, equity)
    wanted = target_quantities(aimed, held, price, equity, book.increments, limits)
    signed = order_quantities(wanted, held, price, aimed, current, limits)
    orders = [
        WorkingOrder(f"{run_id}-r{n}-{symbols[j]}", symbols[j], "sell" if q < 0 else "buy", abs(q))
        for j, q in enumerate(signed.tolist())
        if q != 0
    ]
    orders.sort(key=lambda o: o.side != "sell")  # stable: symbol order within each side
    recorded = {
        symbols[j]: {k: float(v[j]) for k, v in values.items() if np.isfinite(v[j])}
        for j in range(len(symbols))
    }
    event = Rebalanced(
        ts=ts,
        run_id=run_id,
        n=n,
        strategy=book.strategy,
        trigger=trigger,
        equity=equity,
        cash=book.cash_cents / 100.0,
        targets={symbols[j]: float(w) for j, w in enumerate(aimed.tolist()) if np.isfinite(w)},
        current={symbols[j]: float(w) for j, w in enumerate(current.tolist()) if w != 0},
        orders={o.symbol: (-o.qty if o.side == "sell" else o.qty) for o in orders},
        values={s: v for s, v in recorded.items() if v},
    )
    return event, orders


def run_portfolio_backtest(
    config: Any,
    series: Sequence[BarSeries],
    *,
    run_id: str,
    code_version: str = "",
    progress: Callable[[int, int], None] | None = None,
    sink: Callable[[list[Event]], None] | None = None,
) -> list[Event]:
    """Run one portfolio-strategy backtest (``config`` a BacktestConfig); every event in order, from
    RunStarted to RunEnded, as :func:`tape.events.backtest.run_backtest` returns them."""
    from tape.events.backtest import run_ended, run_started
    from tape.events.panel import panel_of
    from tape.events.strategies import make_strategy

    strategy = make_strategy(config.strategy, config.params)
    assert isinstance(strategy, PortfolioStrategy)
    series = [s for s in series if len(s)]
    started = run_started(config, series, run_id=run_id, mode="backtest", code_version=code_version)
    panel = panel_of(series)
    decided = weights_of(strategy, panel)
    check_weights(decided.weights, panel.tradable, panel.symbols, type(strategy).__name__)
    loop = RebalanceLoop(config, panel, strategy, decided, run_id)
    out: list[Event] = [started]
    sent = 0
    for t in range(len(panel)):
        out += loop.row(t)
        if sink is not None and (t % PROGRESS_EVERY == 0):
            sink(out[sent:])
            sent = len(out)
        if progress is not None and (t % PROGRESS_EVERY == 0 or t == len(panel) - 1):
            progress(t + 1, len(panel))
    out.append(run_ended(series, run_id=run_id, ts=int(panel.ts[-1]), bars=sum(len(s) for s in series)))
    if sink is not None:
        sink(out[sent:])
    return out


class RebalanceLoop:
    """The per-row loop of a portfolio backtest over a panel."""

    def __init__(
        self, config: Any, panel: Any, strategy: PortfolioStrategy, decided: Weights, run_id: str
    ) -> None:
        from tape.events.costs import cents

        self.panel, self.decided, self.run_id = panel, decided, run_id
        self.limits = limits_of(strategy.params)
        self.every = strategy.params.rebalance
        self.due = schedule(panel.session, self.every)
        increments = [config.risk.increment(s) for s in panel.symbols]
        self.book = Book(panel.symbols, strategy.name, cents(config.cash), config.cost, increments)
        self.last_close = np.full(panel.width, np.nan)
        self.last_row = {j: int(np.flatnonzero(panel.tradable[:, j])[-1]) for j in range(panel.width)}
        self.aimed = np.full(panel.width, np.nan)  # the latest targets, for drift
        self.rebalances = 0
        self.marks = _Marks(float(config.cash))

    def row(self, t: int) -> list[Event]:
        """Everything that happens at row ``t``."""
        p, book = self.panel, self.book
        ts, tradable = int(p.ts[t]), p.tradable[t]
        out = book.fill_at_open(ts, p.open[t], tradable)
        self.last_close = np.where(tradable, p.close[t], self.last_close)
        last = t == len(p) - 1
        for j in range(p.width):
            if (last or self.last_row[j] == t) and (book.holdings[j].qty or p.symbols[j] in book.working):
                out += self._close_out(ts, j)
        if not last:
            out += self._maybe_rebalance(t, ts, tradable)
        equity = book.equity(self.last_close)
        self.marks.add(equity, any(h.qty for h in book.holdings))
        if last or p.session[t + 1] != p.session[t]:
            out.append(self.marks.mark(ts, book.cash_cents / 100.0))
        return out

    def _close_out(self, ts: int, j: int) -> list[Event]:
        """A symbol's bars end (or the run's): its working order is dropped, its holding sold at the close."""
        from tape.events.schema import OrderCancelled

        book, symbol = self.book, self.panel.symbols[j]
        out: list[Event] = []
        working = book.working.pop(symbol, None)
        if working is not None:
            out.append(
                OrderCancelled(
                    ts=ts, client_order_id=working.client_order_id, symbol=symbol, reason="end of data"
                )
            )
        qty = book.holdings[j].qty
        if qty:
            order = WorkingOrder(f"{self.run_id}-end-{symbol}", symbol, "sell", qty)
            out += book.submit(ts, [order], "end")
            del book.working[symbol]
            out += book.fill(ts, order, float(self.last_close[j]), reason="end")
        return out

    def _maybe_rebalance(self, t: int, ts: int, tradable: np.ndarray) -> list[Event]:
        """The rebalance decided at row ``t``'s close, if one is due."""
        p, book = self.panel, self.book
        row = self.decided.weights[t]
        if self.due[t]:
            trigger, targets = self.every, row
        else:
            current = held_weights(book.held, self.last_close, book.equity(self.last_close))
            if not drifted(self.aimed, current, self.limits.drift):
                return []
            trigger, targets = "drift", np.where(np.isnan(row), self.aimed, row)
        if np.all(np.isnan(targets)):
            return []  # no opinion yet (warm-up): nothing to decide
        self.rebalances += 1
        event, orders = decide_rebalance(
            book,
            ts=ts,
            n=self.rebalances,
            run_id=self.run_id,
            trigger=trigger,
            targets=targets,
            values={k: v[t] for k, v in self.decided.values.items()},
            price=np.where(tradable, p.close[t], np.nan),
            last_close=self.last_close,
            limits=self.limits,
        )
        self.aimed = np.where(
            np.isnan(capped(targets, self.limits)), self.aimed, capped(targets, self.limits)
        )
        return [event, *book.submit(ts, orders, "rebalance")]


class _Marks:
    """Equity, its peak and the session's deepest drawdown; EquityMarked at each session's end."""

    def __init__(self, cash: float) -> None:
        self.equity = self.peak = cash
        self.drawdown = self.drawdown_pct = 0.0
        self.bars = self.in_market = 0

    def add(self, equity: float, in_market: bool) -> None:
        """One row has ended with this equity."""
        self.bars += 1
        self.in_market += in_market
        self.equity = equity
        self.peak = max(self.peak, equity)
        drawdown = self.peak - equity
        self.drawdown = max(self.drawdown, drawdown)
        self.drawdown_pct = max(self.drawdown_pct, drawdown / self.peak * 100.0)

    def mark(self, ts: int, cash: float) -> EquityMarked:
        """The session's mark; its figures restart."""
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
