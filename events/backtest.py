"""The backtest driver of the core: bars in, the run's events out, through the same deciders as live.

Per bar, in this order: the working market order fills at the open (next-open fills); the resting
stop/target is checked against the bar; the strategy's side at the close becomes a Signal and, through
the portfolio's deciders, orders; at the end of each timestamp equity is tracked, and at the end of each
session it is marked (EquityMarked). On the last bar every open position is closed at the close.

Signals are computed vectorised before the loop (causal, proven equal to the incremental form). The loop
gives the full per-bar treatment only to busy bars (a signal, an order to fill, a stop or target touched,
a regime change, a session end, a symbol's last bar); the quiet bars between them only move the marks
(last close, equity, drawdown) and are passed over in a plain loop or, for long stretches, with numpy,
with the same float operations, so the events are exactly those of a bar-by-bar loop.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import numpy as np

from tape.events.bars import BarSeries
from tape.events.correlation import ReturnWindows
from tape.events.costs import CostModel
from tape.events.equity import SessionEquity
from tape.events.errors import ConfigError, DataError
from tape.events.indicators import atr, sma
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
from tape.events.portfolio_state import NO_CONTEXT, PortfolioState, evolve_each
from tape.events.regime import regimes
from tape.events.risk import MarketContext, RiskConfig, needs_context
from tape.events.schema import (
    BenchmarkLeg,
    DataFingerprint,
    Event,
    OrderCancelled,
    RegimeChanged,
    RunEnded,
    RunStarted,
    Signal,
)
from tape.events.short_costs import decide_borrow_fees, decide_margin_call
from tape.events.strategies import Strategy, make_strategy, origin_of
from tape.events.working_orders import decide_expiry, decide_trail, simulate_working_fill

PROGRESS_EVERY = 1 << 16  # bars between progress callbacks


MAX_CASH = 1e12  # cents of it still fit the 64-bit integers cash is kept in, with room for any P&L


class BacktestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything that decides a backtest's outcome besides the bars themselves."""

    symbols: list[str]
    strategy: str = "sma_cross"
    params: dict[str, Any] = {}
    start: str = ""  # YYYY-MM-DD as requested ("" = from the first bar)
    end: str = ""
    timeframe: str = "1Day"
    adjust: bool = True
    dataset: str = ""  # a bundled dataset to read ("" = the market-data store, then the sample)
    cash: float = 100_000.0
    cost: CostModel = CostModel()
    risk: RiskConfig = RiskConfig()

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ConfigError("a backtest needs at least one symbol")
        if not (0 < self.cash <= MAX_CASH):
            raise ConfigError(
                f"starting cash must be positive and at most {MAX_CASH:,.0f}, got {self.cash:g}"
            )

    def with_shortable(self, symbols: Sequence[str]) -> BacktestConfig:
        """This config with ``symbols`` as its easy-to-borrow list (``--shortable``)."""
        risk = msgspec.structs.replace(self.risk, shortable=",".join(symbols))
        return msgspec.structs.replace(self, risk=risk)


def run_id_for(config: BacktestConfig, data: Sequence[DataFingerprint], code_version: str) -> str:
    """A run's id is the hash of what decides it: the same config, data and code give the same id,
    so running an identical backtest twice is recognised as a duplicate, never logged twice."""
    digest = hashlib.sha256(msgspec.msgpack.encode([config, list(data), code_version]))
    return digest.hexdigest()[:16]


def run_started(
    config: BacktestConfig,
    series: Sequence[BarSeries],
    *,
    run_id: str,
    mode: str,
    code_version: str,
    label: str = "",
) -> RunStarted:
    """The event that opens a run: everything needed to re-run it (config, parameters, data, code)."""
    strategy = make_strategy(config.strategy, config.params)
    return RunStarted(
        ts=min(int(s.ts[0]) for s in series),
        run_id=run_id,
        mode=mode,  # type: ignore[arg-type]
        strategy=strategy.name,
        params=strategy.param_dict(),
        symbols=[s.symbol for s in series],
        timeframe=config.timeframe,
        config=recorded_config(config),
        data=[s.fingerprint() for s in series],
        code_version=code_version,
        label=label,
    )


ORIGIN_KEY = "strategy_origin"


def recorded_config(config: BacktestConfig) -> dict[str, Any]:
    """The config as RunStarted records it: a user strategy's origin (kind, location, class, sha256
    of its source) rides along under ``strategy_origin``; a built-in's config is recorded unchanged."""
    out: dict[str, Any] = msgspec.to_builtins(config)
    origin = origin_of(config.strategy)
    if origin:
        out[ORIGIN_KEY] = origin
    return out


def config_of(recorded: dict[str, Any]) -> BacktestConfig:
    """The BacktestConfig a RunStarted recorded (its strategy origin set aside)."""
    return msgspec.convert({k: v for k, v in recorded.items() if k != ORIGIN_KEY}, BacktestConfig)


def run_ended(series: Sequence[BarSeries], *, run_id: str, ts: int, bars: int) -> RunEnded:
    """The event that closes a completed run, with the buy-and-hold legs of its symbols."""
    return RunEnded(
        ts=ts,
        run_id=run_id,
        status="completed",
        bars=bars,
        benchmark=[
            BenchmarkLeg(symbol=s.symbol, first_close=float(s.close[0]), last_close=float(s.close[-1]))
            for s in series
        ],
    )


def run_backtest(
    config: BacktestConfig,
    series: Sequence[BarSeries],
    *,
    run_id: str,
    code_version: str = "",
    progress: Callable[[int, int], None] | None = None,
    sink: Callable[[list[Event]], None] | None = None,
) -> list[Event]:
    """Run one backtest over ``series`` (one BarSeries per symbol, all of ``config.timeframe``).

    Returns every event of the run in order, starting with RunStarted and ending with RunEnded.
    ``progress(done, total)`` is called every few tens of thousands of bars when given, and ``sink``
    receives the events produced so far in order, chunk by chunk (a writer can start before the end).
    """
    strategy = make_strategy(config.strategy, config.params)
    series = [s for s in series if len(s)]
    if not series:
        raise DataError("no bars to backtest in the requested range")
    if strategy.output == "weights":  # a portfolio strategy rebalances to weights: its own loop
        from tape.events.portfolio_run import run_portfolio_backtest

        return run_portfolio_backtest(
            config, series, run_id=run_id, code_version=code_version, progress=progress, sink=sink
        )
    started = run_started(config, series, run_id=run_id, mode="backtest", code_version=code_version)
    loop = _Loop(config, _Timeline(series, strategy, config.risk), strategy, run_id)
    out = loop.out
    out.append(started)
    n, sent = loop.timeline.n, 0
    for chunk_start in range(0, n, PROGRESS_EVERY):
        loop.advance(chunk_start, min(n, chunk_start + PROGRESS_EVERY))
        if sink is not None:
            sink(out[sent:])
            sent = len(out)
        if progress is not None:
            progress(min(n, chunk_start + PROGRESS_EVERY), n)
    out.append(run_ended(series, run_id=run_id, ts=int(loop.timeline.ts[n - 1]), bars=n))
    if sink is not None:
        sink(out[sent:])
    return out


BULK_MIN = 64  # quiet bars from which numpy beats a Python loop over them


class _Loop:
    """The per-bar loop over a merged timeline.

    Most bars are quiet: no signal, no order to fill, no stop or target touched, no session end. They only
    move the marks (last close, equity, drawdown), so they are skipped over: a short stretch in a plain
    loop, a long one with numpy. Every other bar gets the full treatment in :meth:`bar`, exactly as if no
    bar had been skipped.
    """

    def __init__(self, config: BacktestConfig, timeline: _Timeline, strategy: Strategy, run_id: str) -> None:
        self.timeline, self.strategy = timeline, strategy
        self.desk = Desk(config.risk, config.cost)
        self.state = PortfolioState(run_id, config.cash)
        self.equity = SessionEquity(config.cash, self.state.cash_cents)
        self.out: list[Event] = []
        risk = config.risk
        self.windows = ReturnWindows(risk.correlation_window) if risk.max_correlation > 0 else None
        self.last_close: dict[str, float] = {}
        self.last_regime: dict[str, str] = {}
        self._busy = [*timeline.busy, timeline.n]  # sentinel: no static busy bar beyond the end
        self._next = 0  # position in _busy of the first static busy bar not yet passed
        self.direction = risk.side_mode
        # symbol -> (side, signal index): the entry of a stop-and-reverse, placed once its exit fills
        self.reversals: dict[str, tuple[str, int]] = {}
        # Order types (events/orders.py): bars each working limit/stop entry has worked, stop-limits
        # triggered, the symbols worked in the current timestamp, and bars held for time exits.
        self.worked: dict[str, int] = {}
        self.triggered: dict[str, bool] = {}
        self.worked_now: list[str] = []
        self.held: dict[str, tuple[int, int]] = {}
        self.bar_by_bar = risk.bar_by_bar

    def apply(self, events: list[Event]) -> None:
        """Fold decided events into the state and record them."""
        self.out.extend(evolve_each(self.state, events))

    def advance(self, start: int, end: int) -> None:
        """Bars ``start`` to ``end - 1``."""
        self.timeline.window(start, end)
        i = start
        while i < end:
            j = self._next_busy(i, end)
            if j > i:
                j = self._quiet(i, j)
            if j < end:
                self.bar(j)
            i = j + 1

    def _next_busy(self, i: int, end: int) -> int:
        """The first bar from ``i`` that may do more than move the marks, ignoring stops (or ``end``)."""
        busy, k = self._busy, self._next
        while busy[k] < i:
            k += 1
        self._next = k
        j = min(busy[k], end)
        for symbol in self.state.market_orders:  # fills at its symbol's next bar
            j = min(j, self.timeline.next_bar_of(symbol, i))
        if self.bar_by_bar:  # a trailing stop or a time exit follows every bar of a position
            for symbol in self.state.positions:
                j = min(j, self.timeline.next_bar_of(symbol, i))
        return j

    def _quiet(self, i: int, j: int) -> int:
        """Move the marks over quiet bars ``i`` to ``j - 1``; a bar touching a stop or target is not
        quiet: the index of the first one (or ``j``)."""
        if j - i < BULK_MIN:
            held = self.state.positions or self.state.protective
            return self._quiet_loop(i, j) if held else self._quiet_flat(i, j)
        t = self.timeline
        stop = j
        for symbol, guard in self.state.protective.items():
            stop = t.first_touch(symbol, i, stop, guard.floor, guard.ceiling)
        self._quiet_bulk(i, stop)
        return stop

    def _quiet_loop(self, i: int, j: int) -> int:
        """A short stretch with positions open, bar by bar."""
        t, state = self.timeline, self.state
        if len(t.names) == 1 and len(state.positions) == 1 and self.windows is None:
            return self._quiet_one(i, j)
        names = t.names
        sym, low, high, close, group_end = t.lists(i, j)
        protective, last_close, windows = state.protective, self.last_close, self.windows
        cash = state.cash_cents / 100.0
        held = [(symbol, position.qty) for symbol, position in state.positions.items()]
        equity: list[float] = []
        stop = j
        for k in range(j - i):  # offsets into the stretch's lists
            symbol = names[sym[k]]
            guard = protective.get(symbol)
            # A gap through a level also shows in the bar's low or high.
            if guard is not None and (low[k] <= guard.floor or high[k] >= guard.ceiling):
                stop = i + k
                break
            last_close[symbol] = close[k]
            if windows is not None:
                windows.update(symbol, int(t.ts[i + k]), close[k])
            if group_end[k]:
                value = cash  # as PortfolioState.equity adds them, in the same order
                for held_symbol, qty in held:
                    value += qty * last_close[held_symbol]
                equity.append(value)
        self.equity.held(state, equity)
        return stop

    def _quiet_one(self, i: int, j: int) -> int:
        """:meth:`_quiet_loop` for the common case of one symbol, held: its stop, target and quantity
        hold for the whole stretch."""
        t, state = self.timeline, self.state
        _, low, high, close, group_end = t.lists(i, j)
        symbol, position = next(iter(state.positions.items()))
        guard = state.protective.get(symbol)
        floor, ceiling = (guard.floor, guard.ceiling) if guard is not None else (-math.inf, math.inf)
        cash, qty = state.cash_cents / 100.0, position.qty
        stop = j - i  # offsets into the stretch's lists
        for k in range(j - i):
            if low[k] <= floor or high[k] >= ceiling:
                stop = k
                break
        # cash + qty x close is PortfolioState.equity for one position, the same two float operations.
        self.equity.held(state, [cash + qty * close[k] for k in range(stop) if group_end[k]])
        if stop > 0:
            self.last_close[symbol] = close[stop - 1]
        return i + stop

    def _quiet_flat(self, i: int, j: int) -> int:
        """A short stretch without positions (so without stops): only the last closes move."""
        t, last_close, windows = self.timeline, self.last_close, self.windows
        names = t.names
        if len(names) == 1 and windows is None:  # one symbol: only its latest close counts
            last_close[names[0]] = t.close_at(j - 1)
        else:
            sym, _, _, close, _ = t.lists(i, j)
            for k in range(j - i):
                last_close[names[sym[k]]] = close[k]
                if windows is not None:
                    windows.update(names[sym[k]], int(t.ts[i + k]), close[k])
        self.equity.flat(self.state, t.ends_in(i, j))
        return j

    def _quiet_bulk(self, i: int, j: int) -> None:
        """A long stretch (no stop touched in it) with numpy: equity at each timestamp's end at once."""
        t, state = self.timeline, self.state
        if self.windows is not None:
            update = self.windows.update
            sym, _, _, close, _ = t.lists(i, j)
            for k in range(j - i):
                update(t.names[sym[k]], int(t.ts[i + k]), close[k])
        ends = t.group_ends(i, j)
        if not state.positions:
            self.equity.flat(state, ends.shape[0])
        elif ends.shape[0]:
            equity = state.cash_cents / 100.0  # as PortfolioState.equity adds them, in the same order
            for symbol, position in state.positions.items():
                equity = equity + position.qty * t.closes_at(symbol, ends)
            self.equity.held_array(state, equity)  # type: ignore[arg-type]
        t.update_last_close(self.last_close, i, j)

    def bar(self, i: int) -> None:
        """The full treatment of bar ``i``: fills, stops, the signal and its orders, the marks."""
        t, state, desk = self.timeline, self.state, self.desk
        apply, emit = self.apply, self.out.append
        k = i - t.base  # bar i in the current window's lists
        symbol, ts = t.names[t.w_sym[k]], int(t.ts[i])
        if symbol in state.market_orders:
            self._work(i, symbol, ts)
            if self.reversals:
                self._reverse(i, symbol)
        guard = state.protective.get(symbol)
        if guard is not None:
            high, low = t.w_high[k], t.w_low[k]
            if low <= guard.floor or high >= guard.ceiling:
                apply(
                    simulate_protective_fill(
                        state, desk, ts=ts, symbol=symbol, open=float(t.open[i]), high=high, low=low
                    )
                )
        close = t.w_close[k]
        self.last_close[symbol] = close
        if self.windows is not None:
            self.windows.update(symbol, ts, close)
        if t.regime and t.regime[i] != self.last_regime.get(symbol, ""):
            emit(t.regime_change(i, symbol, self.last_regime.get(symbol, ""), ts))
            self.last_regime[symbol] = t.regime[i]
        side = int(t.side[i])
        if side:
            self._signal(i, symbol, side, close)
        if self.bar_by_bar and symbol in state.positions:
            self._after_close(i, symbol, ts, close)
        if i == t.last_index[symbol] and (symbol in state.positions or symbol in state.market_orders):
            _close_out(state, desk, apply, ts=ts, symbol=symbol, close=close)
        if t.w_end[k]:
            self._end_of_timestamp(i, ts)

    def _end_of_timestamp(self, i: int, ts: int) -> None:
        """Every symbol has reported this timestamp: expire what its time in force ends, track equity,
        and mark it at a session's end (after a day's borrow fees of the shorts still open)."""
        t, state, desk, apply = self.timeline, self.state, self.desk, self.apply
        session_end = t.session_end[i] or i == t.n - 1
        if self.worked_now:
            self._expire(ts, session_end)
        if session_end and self.direction != "long" and state.positions:
            apply(decide_borrow_fees(state, desk, ts, self.last_close))
            apply(decide_margin_call(state, desk, ts, self.last_close))
        self.equity.step(state, self.last_close)
        if session_end:
            apply([self.equity.mark(ts, state.cash)])

    def _work(self, i: int, symbol: str, ts: int) -> None:
        """The symbol's working order against bar ``i``: a market order fills at the open; a limit,
        stop or stop-limit by the rules of events/orders.py (its bars worked are counted for expiry)."""
        t, state = self.timeline, self.state
        if state.market_orders[symbol].order_type == "market":
            self.apply(simulate_open_fill(state, self.desk, ts=ts, symbol=symbol, open=float(t.open[i])))
            return
        bar = OrderBar(float(t.open[i]), t.w_high[i - t.base], t.w_low[i - t.base], math.nan)
        events, self.triggered[symbol] = simulate_working_fill(
            state, self.desk, ts=ts, symbol=symbol, bar=bar, triggered=self.triggered.get(symbol, False)
        )
        self.apply(events)
        if symbol in state.market_orders:
            self.worked[symbol] = self.worked.get(symbol, 0) + 1
            self.worked_now.append(symbol)
        else:
            self.worked.pop(symbol, None)
            self.triggered.pop(symbol, None)

    def _expire(self, ts: int, session_end: bool) -> None:
        """Working entries worked in this timestamp that their time in force ends."""
        for symbol in self.worked_now:
            worked = self.worked.get(symbol, 0)
            expired = decide_expiry(
                self.state, self.desk, ts=ts, symbol=symbol, worked=worked, session_end=session_end
            )
            if expired:
                self.apply(expired)
                self.worked.pop(symbol, None)
                self.triggered.pop(symbol, None)
        self.worked_now = []

    def _after_close(self, i: int, symbol: str, ts: int, close: float) -> None:
        """A held symbol's bar has completed: its trailing stop follows, and a time exit is decided
        at the close of its Nth bar held."""
        state, risk = self.state, self.desk.risk
        if risk.trailing:
            self.apply(
                decide_trail(state, self.desk, ts=ts, symbol=symbol, close=close, atr=self.timeline.atr_at(i))
            )
        limit = risk.option("time_exit_bars", 0)
        position = state.positions.get(symbol)
        if limit > 0 and position is not None:
            since, count = self.held.get(symbol, (position.entry_ts, 0))
            count = count + 1 if since == position.entry_ts else 1
            self.held[symbol] = (position.entry_ts, count)
            if count >= limit and symbol not in state.market_orders:
                self.apply(decide_exit(state, ts=ts, symbol=symbol, reason="time_exit", price=close))

    def _signal(self, i: int, symbol: str, side: int, close: float) -> None:
        """The strategy's side at this close: a Signal, then the portfolio's entry or exit.

        long: BUY enters, SELL exits. short: SELL enters a short, BUY covers. both (stop-and-reverse):
        BUY makes the position long and SELL short, closing the other side first; the new entry is
        placed once the exit has filled (at the next open, with the same signal's close as its price).
        """
        t, state, name = self.timeline, self.state, self.strategy.name
        values = t.values_at(i)
        ts = int(t.ts[i])
        self.out.append(
            Signal(
                ts=ts,
                symbol=symbol,
                strategy=name,
                side="buy" if side == 1 else "sell" if side == -1 else signal_side(state, symbol, side),
                price=close,
                reason=self.strategy.describe(side, values),
                values=values,
            )
        )
        exits, entry = signal_plan(state, self.direction, symbol, side)
        if exits:
            self.apply(decide_exit(state, ts=ts, symbol=symbol, reason="signal", price=close))
            if entry and symbol in state.market_orders:
                self.reversals[symbol] = (entry, i)
        elif entry:
            self._enter(i, symbol, entry, ts, values.get("size_factor", 1.0))

    def _enter(self, i: int, symbol: str, side: str, ts: int, size_factor: float | None = None) -> None:
        """An entry (``side`` buy: long, sell: short) decided on signal bar ``i``'s close, dated ``ts``
        (the signal bar's, or that of the bar where a reversal's exit filled)."""
        t, state = self.timeline, self.state
        context = t.context_at(i)
        if self.windows is not None:
            context = correlation_context(context, state, self.windows, symbol)
        self.apply(
            decide_entry(
                state,
                self.desk,
                ts=ts,
                day=int(t.day[i]),
                symbol=symbol,
                strategy=self.strategy.name,
                price=t.close_at(i),
                equity=state.equity(self.last_close),
                marks=self.last_close,
                context=context,
                size_factor=t.values_at(i).get("size_factor", 1.0) if size_factor is None else size_factor,
                side=side,
            )
        )

    def _reverse(self, i: int, symbol: str) -> None:
        """A stop-and-reverse whose exit has just filled at bar ``i``'s open: its entry, filled at the
        same open. A reversal whose exit did not fill is dropped."""
        reversal = self.reversals.pop(symbol, None)
        if reversal is None or symbol in self.state.positions:
            return
        side, signal_at = reversal
        ts = int(self.timeline.ts[i])
        self._enter(signal_at, symbol, side, ts)
        if symbol in self.state.market_orders:
            self._work(i, symbol, ts)


def _close_out(
    state: PortfolioState,
    desk: Desk,
    apply: Callable[[list[Event]], None],
    *,
    ts: int,
    symbol: str,
    close: float,
) -> None:
    """The symbol's last bar: cancel a working entry; sell an open position at the close."""
    order = state.market_orders.get(symbol)
    if order is not None and order.reason == "entry":
        apply(
            [
                OrderCancelled(
                    ts=ts, client_order_id=order.client_order_id, symbol=symbol, reason="end of data"
                )
            ]
        )
        return
    apply(decide_exit(state, ts=ts, symbol=symbol, reason="end", price=close))
    apply(simulate_open_fill(state, desk, ts=ts, symbol=symbol, open=close))


def _flat(found: list[tuple[list[Any], list[Any], list[Any]]], part: int) -> list[Any]:
    return [value for per_symbol in found for value in per_symbol[part]]


class _Timeline:
    """All symbols' bars merged by (timestamp, symbol) into plain lists for the per-bar loop, with the
    bars on which something may happen whatever the portfolio holds (``busy``): signals, regime changes,
    session ends and each symbol's last bar."""

    def __init__(self, series: Sequence[BarSeries], strategy: Strategy, risk: RiskConfig) -> None:
        self.names = [s.symbol for s in series]
        self._index_of = {name: k for k, name in enumerate(self.names)}
        ts = np.concatenate([s.ts for s in series])
        sym = np.concatenate([np.full(len(s), k, dtype=np.int64) for k, s in enumerate(series)])
        single = len(series) == 1
        order = np.arange(ts.shape[0]) if single else np.lexsort((sym, ts))
        ts, sym = ts[order], sym[order]
        signals = [strategy.signals(s) for s in series]

        def merged(columns: list[np.ndarray]) -> np.ndarray:
            return columns[0] if single else np.concatenate(columns)[order]

        n = self.n = ts.shape[0]
        day = merged([s.session for s in series])
        group_end = np.ones(n, dtype=bool)
        group_end[:-1] = ts[1:] != ts[:-1]
        session_end = np.ones(n, dtype=bool)
        session_end[:-1] = day[1:] != day[:-1]
        session_end &= group_end
        # Read on busy bars only: numpy arrays (the loop converts the few values it takes).
        self.ts, self.day, self.session_end = ts, day, session_end
        self.open = merged([s.open for s in series])
        self.side = merged([sig.side for sig in signals])
        self._values = {
            name: merged([sig.values[name] for sig in signals])
            for name in (signals[0].values if signals else {})
        }
        self.close = merged([s.close for s in series])
        self.low, self.high = merged([s.low for s in series]), merged([s.high for s in series])
        self.sym, self.group_end = sym, group_end
        self.window(0, 0)
        self._bars_of = [np.flatnonzero(sym == k) for k in range(len(series))]  # merged positions
        self.last_index = {self.names[k]: int(at[-1]) for k, at in enumerate(self._bars_of)}
        busy = (self.side != 0) | session_end
        busy[list(self.last_index.values())] = True
        changes = self._risk_columns(series, risk, merged, order)
        if changes is not None:
            busy |= changes
        self.busy: list[int] = np.flatnonzero(busy).tolist()

    def _risk_columns(
        self,
        series: Sequence[BarSeries],
        risk: RiskConfig,
        merged: Callable[[list[np.ndarray]], np.ndarray],
        order: np.ndarray,
    ) -> np.ndarray | None:
        """ATR, average volume and regimes when the risk rules read them (causal: the values at bar i
        use bars <= i only); returns where a regime changes (busy bars), None without regimes."""
        self._atr: list[float] = []
        self._avg_volume: list[float] = []
        self.regime: list[str] = []
        self._regime_values: list[tuple[float, float]] = []
        if needs_context(risk):
            self._atr = merged([atr(s.high, s.low, s.close, risk.atr_period) for s in series]).tolist()
            self._avg_volume = merged([sma(s.volume, risk.volume_window) for s in series]).tolist()
        if not risk.allowed_regimes:
            return None
        found = [
            regimes(s.high, s.low, s.close, trend_adx=risk.trend_adx, volatile_atr_pct=risk.volatile_atr_pct)
            for s in series
        ]
        names_all, adx_all, pct_all = _flat(found, 0), _flat(found, 1), _flat(found, 2)
        positions = order.tolist()
        self.regime = [names_all[k] for k in positions]
        self._regime_values = [(adx_all[k], pct_all[k]) for k in positions]
        return merged([_changes(np.asarray(f[0])) for f in found])

    def next_bar_of(self, symbol: str, i: int) -> int:
        """The merged position of ``symbol``'s first bar at or after ``i`` (``n`` when none is left)."""
        if len(self.names) == 1:
            return i if i < self.n else self.n
        at = self._bars_of[self._index_of[symbol]]
        k = int(np.searchsorted(at, i))
        return int(at[k]) if k < at.shape[0] else self.n

    def first_touch(self, symbol: str, i: int, j: int, floor: float, ceiling: float) -> int:
        """The first bar of ``symbol`` in ``i`` to ``j - 1`` whose low reaches ``floor`` or whose high
        reaches ``ceiling`` (``j`` when none does)."""
        at = self._bars_of[self._index_of[symbol]]
        at = at[np.searchsorted(at, i) : np.searchsorted(at, j)]
        hits = np.flatnonzero((self.low[at] <= floor) | (self.high[at] >= ceiling))
        return int(at[hits[0]]) if hits.shape[0] else j

    def group_ends(self, i: int, j: int) -> np.ndarray:
        """Merged positions in ``i`` to ``j - 1`` that end a timestamp."""
        return np.flatnonzero(self.group_end[i:j]) + i

    def closes_at(self, symbol: str, positions: np.ndarray) -> np.ndarray:
        """``symbol``'s last close at or before each of the merged ``positions`` (it has one: it is held)."""
        at = self._bars_of[self._index_of[symbol]]
        return self.close[at[np.searchsorted(at, positions, side="right") - 1]]

    def update_last_close(self, last_close: dict[str, float], i: int, j: int) -> None:
        """Each symbol's last close as of bar ``j - 1``, for the symbols with bars in ``i`` to ``j - 1``."""
        for name, at in zip(self.names, self._bars_of, strict=True):
            k = int(np.searchsorted(at, j)) - 1
            if k >= 0 and at[k] >= i:
                last_close[name] = self.close_at(int(at[k]))

    def window(self, start: int, end: int) -> None:
        """Make bars ``start`` to ``end - 1`` the window: their symbol, low, high, close and timestamp
        end as Python lists (the fastest to index in the loop), ``w_*[i - base]`` for bar ``i``. One
        window at a time: the whole run's lists would cost ~110 B a bar."""
        self.base = start
        self.w_sym: list[int] = self.sym[start:end].tolist()
        self.w_low: list[float] = self.low[start:end].tolist()
        self.w_high: list[float] = self.high[start:end].tolist()
        self.w_close: list[float] = self.close[start:end].tolist()
        self.w_end: list[bool] = self.group_end[start:end].tolist()

    def lists(self, i: int, j: int) -> tuple[list[int], list[float], list[float], list[float], list[bool]]:
        """The window's lists for bars ``i`` to ``j - 1`` (inside the window)."""
        lo, hi = i - self.base, j - self.base
        return (
            self.w_sym[lo:hi],
            self.w_low[lo:hi],
            self.w_high[lo:hi],
            self.w_close[lo:hi],
            self.w_end[lo:hi],
        )

    def close_at(self, i: int) -> float:
        """The close of merged position ``i`` as a Python float (as the events record it)."""
        k = i - self.base
        return self.w_close[k] if 0 <= k < len(self.w_close) else float(self.close[i])

    def ends_in(self, i: int, j: int) -> int:
        """How many of bars ``i`` to ``j - 1`` end a timestamp."""
        return int(np.count_nonzero(self.group_end[i:j]))

    def atr_at(self, i: int) -> float:
        """ATR at merged position ``i`` (NaN when no rule needs it)."""
        return self._atr[i] if self._atr else math.nan

    def context_at(self, i: int) -> MarketContext:
        """ATR, average volume and regime at merged position ``i`` (empty when the rules are off)."""
        if not self._atr:
            return NO_CONTEXT
        return MarketContext(self._atr[i], self._avg_volume[i], self.regime[i] if self.regime else "")

    def regime_change(self, i: int, symbol: str, previous: str, ts: int) -> RegimeChanged:
        """The event for a regime change at merged position ``i``."""
        adx_value, atr_pct = self._regime_values[i]
        return RegimeChanged(
            ts=ts, symbol=symbol, regime=self.regime[i], previous=previous, adx=adx_value, atr_pct=atr_pct
        )

    def values_at(self, i: int) -> dict[str, float]:
        """The indicator values behind the side at merged position ``i``."""
        return {name: float(column[i]) for name, column in self._values.items()}


def _changes(regime: np.ndarray) -> np.ndarray:
    """Where a symbol's regime differs from its previous bar's ("" before the first bar)."""
    previous = np.empty_like(regime)
    previous[:1] = ""
    previous[1:] = regime[:-1]
    return regime != previous
