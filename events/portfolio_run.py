"""The backtest of a portfolio strategy: the universe's panel in, the run's events out.

Per row of the panel (one timestamp), in this order: the working orders fill at their symbols' open,
sells first; the last closes move; a symbol whose bars end is sold at its last close; on a rebalance
row (the first of its period, or a drift past ``drift``) the strategy's weights at the close become
one :class:`~tape.events.schema.Rebalanced` decision and its orders; equity is tracked, and marked at
each session's end. The decision is :func:`decide_rebalance`, the same function a live portfolio runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from tape.events.bars import BarSeries
from tape.events.equity import SessionEquity
from tape.events.portfolio_book import Book, WorkingOrder
from tape.events.rebalance import (
    Limits,
    capped,
    check_weights,
    drifted,
    held_weights,
    order_quantities,
    period_of,
    target_quantities,
)
from tape.events.schema import Event, OrderCancelled, Rebalanced
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


class PanelRow(NamedTuple):
    """One timestamp of the universe as the rebalancer takes it: the bars (NaN where none), the
    strategy's weights and values at its close, and what the driver knows of the timeline (whether
    it ends a session, which symbols' bars end here, whether it is the run's last)."""

    ts: int
    session: int
    open: np.ndarray
    close: np.ndarray
    tradable: np.ndarray
    weights: np.ndarray
    values: dict[str, np.ndarray]
    ends: np.ndarray  # bool per symbol: its last bar
    last: bool
    session_end: bool


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
    rebalancer = Rebalancer(config, panel.symbols, strategy, run_id)
    last_rows = last_bars(panel.tradable)
    out: list[Event] = [started]
    sent = 0
    for t in range(len(panel)):
        out += rebalancer.step(panel_row(panel, t, decided, last_rows))
        if sink is not None and (t % PROGRESS_EVERY == 0):
            sink(out[sent:])
            sent = len(out)
        if progress is not None and (t % PROGRESS_EVERY == 0 or t == len(panel) - 1):
            progress(t + 1, len(panel))
    out.append(run_ended(series, run_id=run_id, ts=int(panel.ts[-1]), bars=sum(len(s) for s in series)))
    if sink is not None:
        sink(out[sent:])
    return out


def last_bars(tradable: np.ndarray) -> np.ndarray:
    """The row of each symbol's last bar."""
    rows = tradable.shape[0]
    return rows - 1 - np.argmax(tradable[::-1], axis=0)


def panel_row(panel: Any, t: int, decided: Weights, last_rows: np.ndarray) -> PanelRow:
    """Row ``t`` of a panel with its weights, as the rebalancer takes it."""
    last = t == len(panel) - 1
    return PanelRow(
        ts=int(panel.ts[t]),
        session=int(panel.session[t]),
        open=panel.open[t],
        close=panel.close[t],
        tradable=panel.tradable[t],
        weights=decided.weights[t],
        values={k: v[t] for k, v in decided.values.items()},
        ends=last_rows == t,
        last=last,
        session_end=last or bool(panel.session[t + 1] != panel.session[t]),
    )


class Rebalancer:
    """A portfolio strategy's run, one timestamp at a time: the same steps in a backtest and in a
    replayed or live session (which feed it rows as their bars arrive)."""

    def __init__(
        self, config: Any, symbols: tuple[str, ...], strategy: PortfolioStrategy, run_id: str
    ) -> None:
        from tape.events.costs import cents

        self.symbols, self.run_id = symbols, run_id
        self.limits = limits_of(strategy.params)
        self.every = strategy.params.rebalance
        self.period = -1  # the period of the previous row (none yet)
        increments = [config.risk.increment(s) for s in symbols]
        self.book = Book(symbols, strategy.name, cents(config.cash), config.cost, increments)
        self.last_close = np.full(len(symbols), np.nan)
        self.aimed = np.full(len(symbols), np.nan)  # the latest targets, for drift
        self.rebalances = 0
        self.marks = SessionEquity(float(config.cash))

    def step(self, row: PanelRow) -> list[Event]:
        """Everything that happens at one timestamp."""
        book = self.book
        out = book.fill_at_open(row.ts, row.open, row.tradable)
        self.last_close = np.where(row.tradable, row.close, self.last_close)
        for j, symbol in enumerate(self.symbols):
            if (row.last or row.ends[j]) and (book.holdings[j].qty or symbol in book.working):
                out += self._close_out(row.ts, j)
        period = row.ts if self.every == "bar" else period_of(row.session, self.every)
        due, self.period = period != self.period, period
        if not row.last:
            out += self._maybe_rebalance(row, due)
        self.marks.add(book.equity(self.last_close), any(h.qty for h in book.holdings))
        if row.session_end:
            out.append(self.marks.mark(row.ts, book.cash_cents / 100.0))
        return out

    def _close_out(self, ts: int, j: int) -> list[Event]:
        """A symbol's bars end (or the run's): its working order is dropped, its holding sold at the close."""
        book, symbol = self.book, self.symbols[j]
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

    def _maybe_rebalance(self, row: PanelRow, due: bool) -> list[Event]:
        """The rebalance decided at this row's close, if one is due."""
        book = self.book
        if due:
            trigger, targets = self.every, row.weights
        elif self.limits.drift <= 0:
            return []
        else:
            current = held_weights(book.held, self.last_close, book.equity(self.last_close))
            if not drifted(self.aimed, current, self.limits.drift):
                return []
            trigger, targets = "drift", np.where(np.isnan(row.weights), self.aimed, row.weights)
        if np.all(np.isnan(targets)):
            return []  # no opinion yet (warm-up): nothing to decide
        self.rebalances += 1
        event, orders = decide_rebalance(
            book,
            ts=row.ts,
            n=self.rebalances,
            run_id=self.run_id,
            trigger=trigger,
            targets=targets,
            values=row.values,
            price=np.where(row.tradable, row.close, np.nan),
            last_close=self.last_close,
            limits=self.limits,
        )
        aimed = capped(targets, self.limits)
        self.aimed = np.where(np.isnan(aimed), self.aimed, aimed)
        return [event, *book.submit(row.ts, orders, "rebalance")]
