"""A trading session fed one bar at a time: the live twin of the backtest loop.

The backtest loop (events/backtest.py) is specialised for speed over whole arrays; live actors receive
bars one by one. Both call the same deciders in the same order per bar (fill at the open, protective
stop/target, the strategy's side at the close, equity at the end of a timestamp, a mark at the end of a
session), so a run fed through this class produces exactly the backtest's events
(tests/test_session.py holds them to it).
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from tape.events.backtest import BacktestConfig
from tape.events.correlation import ReturnWindows
from tape.events.indicators import ATR, SMA
from tape.events.orders import Bar as OrderBar
from tape.events.portfolio import (
    Desk,
    correlation_context,
    decide_entry,
    decide_exit,
    signal_plan,
    signal_side,
    simulate_open_fill,
    simulate_protective_fill,
)
from tape.events.portfolio_state import NO_CONTEXT, PortfolioState, evolve
from tape.events.regime import RegimeTracker
from tape.events.risk import MarketContext, needs_context
from tape.events.schema import EquityMarked, Event, OrderCancelled, RegimeChanged, Signal
from tape.events.short_costs import decide_borrow_fees, decide_margin_call
from tape.events.working_orders import decide_expiry, decide_trail, simulate_working_fill


class TradingSession:
    """Portfolio state, equity tracking and the per-bar order of decisions for one run."""

    def __init__(self, config: BacktestConfig, run_id: str, strategy: str) -> None:
        self.config, self.run_id, self.strategy = config, run_id, strategy
        self.desk = Desk(config.risk, config.cost)
        self.state = PortfolioState(run_id, config.cash)
        self.last_close: dict[str, float] = {}
        self._context = needs_context(config.risk)
        self._atr: dict[str, ATR] = {}
        self._avg_volume: dict[str, SMA] = {}
        self._latest: dict[str, MarketContext] = {}
        self._regimes: dict[str, RegimeTracker] = {}
        risk = config.risk
        self._windows = ReturnWindows(risk.correlation_window) if risk.max_correlation > 0 else None
        self.peak = self.equity = config.cash
        self._seen_cash = self.state.cash_cents
        # symbol -> (side, day, price, size factor): a stop-and-reverse's entry, placed once its exit fills
        self._reversals: dict[str, tuple[str, int, float, float]] = {}
        self._worked: dict[str, int] = {}  # bars each working limit/stop entry has worked
        self._triggered: dict[str, bool] = {}  # stop-limits whose stop has triggered
        self._worked_now: list[str] = []
        self._held: dict[str, tuple[int, int]] = {}  # symbol -> (entry ts, bars held) for time exits
        self._bar_by_bar = config.risk.bar_by_bar
        self._dd = self._dd_pct = 0.0
        self._bars = self._in_market = 0

    def _apply(self, events: list[Event], out: list[Event]) -> None:
        for event in events:
            evolve(self.state, event)
            out.append(event)

    def open_bar(self, symbol: str, ts: int, open: float, high: float, low: float) -> list[Event]:
        """The bar opens: the working market order fills; the resting stop/target is checked."""
        out: list[Event] = []
        state = self.state
        bar = OrderBar(open, high, low, math.nan)
        if symbol in state.market_orders:
            self._work(symbol, ts, bar, out)
            reversal = self._reversals.pop(symbol, None)
            if reversal is not None and symbol not in state.positions:
                self._apply(self._entry(symbol, ts, *reversal), out)
                if symbol in state.market_orders:
                    self._work(symbol, ts, bar, out)
        guard = state.protective.get(symbol)
        if guard is not None and (low <= guard.floor or high >= guard.ceiling):
            self._apply(
                simulate_protective_fill(
                    state, self.desk, ts=ts, symbol=symbol, open=open, high=high, low=low
                ),
                out,
            )
        return out

    def _work(self, symbol: str, ts: int, bar: OrderBar, out: list[Event]) -> None:
        """The symbol's working order against this bar, as the backtest's ``_Loop._work``."""
        state = self.state
        if state.market_orders[symbol].order_type == "market":
            self._apply(simulate_open_fill(state, self.desk, ts=ts, symbol=symbol, open=bar.open), out)
            return
        events, self._triggered[symbol] = simulate_working_fill(
            state, self.desk, ts=ts, symbol=symbol, bar=bar, triggered=self._triggered.get(symbol, False)
        )
        self._apply(events, out)
        if symbol in state.market_orders:
            self._worked[symbol] = self._worked.get(symbol, 0) + 1
            self._worked_now.append(symbol)
        else:
            self._worked.pop(symbol, None)
            self._triggered.pop(symbol, None)

    def _expire(self, ts: int, session_end: bool, out: list[Event]) -> None:
        for symbol in self._worked_now:
            worked = self._worked.get(symbol, 0)
            expired = decide_expiry(
                self.state, self.desk, ts=ts, symbol=symbol, worked=worked, session_end=session_end
            )
            if expired:
                self._apply(expired, out)
                self._worked.pop(symbol, None)
                self._triggered.pop(symbol, None)
        self._worked_now = []

    def _after_close(self, symbol: str, ts: int, close: float, out: list[Event]) -> None:
        """As the backtest's ``_Loop._after_close``: the trailing stop follows, a time exit is due."""
        state, risk = self.state, self.config.risk
        if risk.trailing:
            atr = self._latest[symbol].atr if symbol in self._latest else math.nan
            self._apply(decide_trail(state, self.desk, ts=ts, symbol=symbol, close=close, atr=atr), out)
        limit = risk.option("time_exit_bars", 0)
        position = state.positions.get(symbol)
        if limit > 0 and position is not None:
            since, count = self._held.get(symbol, (position.entry_ts, 0))
            count = count + 1 if since == position.entry_ts else 1
            self._held[symbol] = (position.entry_ts, count)
            if count >= limit and symbol not in state.market_orders:
                self._apply(decide_exit(state, ts=ts, symbol=symbol, reason="time_exit", price=close), out)

    def observe(
        self, ts: int, symbol: str, high: float, low: float, close: float, volume: float
    ) -> list[Event]:
        """Feed the bar to the risk gate's own indicators (ATR, average volume, regime) when its rules
        need them; returns a RegimeChanged event when the symbol's regime changes."""
        if not self._context:
            return []
        risk = self.config.risk
        atr = self._atr.setdefault(symbol, ATR(risk.atr_period)).update(high, low, close)
        volume_avg = self._avg_volume.setdefault(symbol, SMA(risk.volume_window)).update(volume)
        out: list[Event] = []
        regime = ""
        if risk.allowed_regimes:
            tracker = self._regimes.get(symbol)
            if tracker is None:
                tracker = self._regimes[symbol] = RegimeTracker(
                    trend_adx=risk.trend_adx, volatile_atr_pct=risk.volatile_atr_pct
                )
            regime = tracker.update(high, low, close)
            previous = self._latest[symbol].regime if symbol in self._latest else ""
            if regime != previous:
                adx_value, atr_pct = tracker.values
                out.append(
                    RegimeChanged(
                        ts=ts, symbol=symbol, regime=regime, previous=previous, adx=adx_value, atr_pct=atr_pct
                    )
                )
        self._latest[symbol] = MarketContext(atr, volume_avg, regime)
        return out

    def close_bar(
        self, symbol: str, ts: int, day: int, close: float, side: int, values: dict[str, float], reason: str
    ) -> list[Event]:
        """The bar closes with the strategy's ``side``: a Signal and what the portfolio decides on it.
        Call :meth:`observe` with the same bar first when the risk rules use market context."""
        self.last_close[symbol] = close
        if self._windows is not None:
            self._windows.update(symbol, ts, close)
        out: list[Event] = []
        if side:
            self._decide_signal(symbol, ts, day, close, side, values, reason, out)
        if self._bar_by_bar and symbol in self.state.positions:
            self._after_close(symbol, ts, close, out)
        return out

    def _decide_signal(
        self,
        symbol: str,
        ts: int,
        day: int,
        close: float,
        side: int,
        values: dict[str, float],
        reason: str,
        out: list[Event],
    ) -> None:
        """A Signal, and the exit, entry or reversal the portfolio decides on it."""
        out.append(
            Signal(
                ts=ts,
                symbol=symbol,
                strategy=self.strategy,
                side="buy" if side == 1 else "sell" if side == -1 else signal_side(self.state, symbol, side),
                price=close,
                reason=reason,
                values=values,
            )
        )
        exits, entry = signal_plan(self.state, self.config.risk.side_mode, symbol, side)
        if exits:
            self._apply(decide_exit(self.state, ts=ts, symbol=symbol, reason="signal", price=close), out)
            if entry and symbol in self.state.market_orders:  # stop-and-reverse: entered once it fills
                self._reversals[symbol] = (entry, day, close, values.get("size_factor", 1.0))
        elif entry:
            self._apply(self._entry(symbol, ts, entry, day, close, values.get("size_factor", 1.0)), out)

    def _entry(
        self, symbol: str, ts: int, side: str, day: int, price: float, size_factor: float
    ) -> list[Event]:
        """An entry decided on a signal's close ``price`` (``side`` buy: long, sell: short)."""
        return decide_entry(
            self.state,
            self.desk,
            ts=ts,
            day=day,
            symbol=symbol,
            strategy=self.strategy,
            price=price,
            equity=self.state.equity(self.last_close),
            marks=self.last_close,
            context=self._entry_context(symbol),
            size_factor=size_factor,
            side=side,
        )

    def _entry_context(self, symbol: str) -> MarketContext:
        context = self._latest.get(symbol, NO_CONTEXT)
        if self._windows is None:
            return context
        return correlation_context(context, self.state, self._windows, symbol)

    def close_out(self, symbol: str, ts: int, close: float) -> list[Event]:
        """The symbol's data ends: cancel a working entry, sell an open position at the close."""
        out: list[Event] = []
        state = self.state
        if symbol not in state.positions and symbol not in state.market_orders:
            return out
        order = state.market_orders.get(symbol)
        if order is not None and order.reason == "entry":
            self._apply(
                [
                    OrderCancelled(
                        ts=ts, client_order_id=order.client_order_id, symbol=symbol, reason="end of data"
                    )
                ],
                out,
            )
            return out
        self._apply(decide_exit(state, ts=ts, symbol=symbol, reason="end", price=close), out)
        self._apply(simulate_open_fill(state, self.desk, ts=ts, symbol=symbol, open=close), out)
        return out

    def end_of_timestamp(self, ts: int, *, session_end: bool) -> list[Event]:
        """Every symbol has reported ``ts``: expire what its time in force ends, track equity; at a
        session's end, mark it (after a day's borrow fees of the shorts still open)."""
        state = self.state
        fees: list[Event] = []
        if self._worked_now:
            self._expire(ts, session_end, fees)
        if session_end and state.positions and self.config.risk.side_mode != "long":
            self._apply(decide_borrow_fees(state, self.desk, ts, self.last_close), fees)
            self._apply(decide_margin_call(state, self.desk, ts, self.last_close), fees)
        self._track_equity()
        if not session_end:
            return fees
        mark = EquityMarked(
            ts=ts,
            equity=self.equity,
            cash=state.cash,
            peak=self.peak,
            drawdown=self._dd,
            drawdown_pct=self._dd_pct,
            bars=self._bars,
            bars_in_market=self._in_market,
        )
        evolve(state, mark)
        self._reset_session_counters()
        return [*fees, mark]

    def refold(self, bars: list[tuple[str, int, float, float, float, float]], written: list[Event]) -> None:
        """Fold one timestamp a previous process already decided back in (a resumed session).

        ``bars`` are the timestamp's (symbol, ts, high, low, close, volume) in feed order and ``written``
        the events the log holds for it. The portfolio is rebuilt by :func:`evolve` on those events (the
        fold every driver uses), the session's own trackers (indicators, last closes, equity, peak and
        drawdown since the last mark) by seeing the bars again, so the next timestamp is decided exactly
        as in an uninterrupted run.
        """
        for symbol, ts, high, low, close, volume in bars:
            self.observe(ts, symbol, high, low, close, volume)  # its RegimeChanged is in ``written``
            self.last_close[symbol] = close
            if self._windows is not None:
                self._windows.update(symbol, ts, close)
        marked = False
        for event in written:
            evolve(self.state, event)
            marked = marked or isinstance(event, EquityMarked)
        # Evolving a mark or an alert moves neither cash nor positions: tracking after them is the same.
        self._track_equity()
        if marked:
            self._reset_session_counters()

    def _track_equity(self) -> None:
        state = self.state
        self._bars += 1
        if state.positions or state.cash_cents != self._seen_cash:
            self._seen_cash = state.cash_cents
            self.equity = state.equity(self.last_close)
            if self.equity > self.peak:
                self.peak = self.equity
            drawdown = self.peak - self.equity
            if drawdown > self._dd:
                self._dd = drawdown
            if drawdown / self.peak * 100.0 > self._dd_pct:
                self._dd_pct = drawdown / self.peak * 100.0
            if state.positions:
                self._in_market += 1

    def _reset_session_counters(self) -> None:
        self._dd = self._dd_pct = 0.0
        self._bars = self._in_market = 0

    def snapshot(self) -> dict[str, Any]:
        """Positions, cash and equity for status displays."""
        return {
            "cash": self.state.cash,
            "equity": self.equity,
            "positions": {
                s: {
                    "qty": p.qty,
                    "entry_price": p.entry_price,
                    "stop": p.stop,
                    "last": self.last_close.get(s),
                }
                for s, p in self.state.positions.items()
            },
            "realized_pnl": self.state.realized_cents / 100.0,
            "config": msgspec.to_builtins(self.config),
        }


class BarStep(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One bar in feed order, with what the driver must do after it."""

    symbol: str
    row: int  # position in that symbol's BarSeries
    ts: int
    day: int
    last_of_symbol: bool
    group_end: bool  # every symbol has reported this timestamp
    session_end: bool  # ... and it is the last timestamp of its session (or of the data)


def feed_order(series: list[Any]) -> list[BarStep]:
    """Bars of several symbols merged by (timestamp, symbol order), as a replay feed delivers them."""
    merged = sorted(
        ((int(s.ts[i]), k, i) for k, s in enumerate(series) for i in range(len(s))),
        key=lambda t: (t[0], t[1]),
    )
    steps: list[BarStep] = []
    for n, (ts, k, i) in enumerate(merged):
        s = series[k]
        nxt = merged[n + 1] if n + 1 < len(merged) else None
        group_end = nxt is None or nxt[0] != ts
        next_day = int(series[nxt[1]].session[nxt[2]]) if nxt is not None else None
        day = int(s.session[i])
        steps.append(
            BarStep(
                symbol=s.symbol,
                row=i,
                ts=ts,
                day=day,
                last_of_symbol=i == len(s) - 1,
                group_end=group_end,
                session_end=group_end and (nxt is None or next_day != day),
            )
        )
    return steps
