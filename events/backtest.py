"""The backtest driver of the core: bars in, the run's events out, through the same deciders as live.

Per bar, in this order: the working market order fills at the open (next-open fills); the resting
stop/target is checked against the bar; the strategy's side at the close becomes a Signal and, through
the portfolio's deciders, orders; at the end of each timestamp equity is tracked, and at the end of each
session it is marked (EquityMarked). On the last bar every open position is closed at the close.

Signals are computed vectorised before the loop (causal, proven equal to the incremental form); the
loop itself is plain Python over lists, touching the portfolio only where something happens.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import numpy as np

from events.bars import BarSeries
from events.correlation import ReturnWindows
from events.costs import CostModel
from events.errors import ConfigError, DataError
from events.indicators import atr, sma
from events.portfolio import (
    NO_CONTEXT,
    Desk,
    PortfolioState,
    correlation_context,
    decide_entry,
    decide_exit,
    evolve,
    simulate_open_fill,
    simulate_protective_fill,
)
from events.regime import regimes
from events.risk import MarketContext, RiskConfig, needs_context
from events.schema import (
    BenchmarkLeg,
    DataFingerprint,
    EquityMarked,
    Event,
    OrderCancelled,
    RegimeChanged,
    RunEnded,
    RunStarted,
    Signal,
)
from events.strategies import BUY, Strategy, make_strategy

PROGRESS_EVERY = 1 << 16  # bars between progress callbacks


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
        if not (self.cash > 0):
            raise ConfigError(f"starting cash must be positive, got {self.cash:g}")


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
        config=msgspec.to_builtins(config),
        data=[s.fingerprint() for s in series],
        code_version=code_version,
        label=label,
    )


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
    desk = Desk(config.risk, config.cost)
    state = PortfolioState(run_id, config.cash)
    out: list[Event] = []
    emit = out.append

    def apply(events: list[Event]) -> None:
        for event in events:
            evolve(state, event)
            emit(event)

    emit(run_started(config, series, run_id=run_id, mode="backtest", code_version=code_version))
    timeline = _Timeline(series, strategy, config.risk)
    context_at = timeline.context_at
    regime_l, last_regime = timeline.regime, {}
    risk = config.risk
    windows = ReturnWindows(risk.correlation_window) if risk.max_correlation > 0 else None
    names, name_of = timeline.names, timeline.symbol
    ts_l, o_l, h_l, l_l, c_l = timeline.ts, timeline.open, timeline.high, timeline.low, timeline.close
    side_l, day_l, group_end_l, session_end_l = (
        timeline.side,
        timeline.day,
        timeline.group_end,
        timeline.session_end,
    )
    describe, strategy_name = strategy.describe, strategy.name
    market_orders, protective, positions = state.market_orders, state.protective, state.positions
    last_close: dict[str, float] = {}
    last_index = {name: int(i) for name, i in timeline.last_index.items()}

    peak = config.cash
    period_dd = period_dd_pct = 0.0
    period_bars = period_in_market = 0
    equity = config.cash
    seen_cash = state.cash_cents
    n = len(ts_l)
    final = n - 1
    sent = 0
    for chunk_start in range(0, n, PROGRESS_EVERY):
        for i in range(chunk_start, min(n, chunk_start + PROGRESS_EVERY)):
            symbol = names[name_of[i]]
            if market_orders and symbol in market_orders:
                apply(simulate_open_fill(state, desk, ts=ts_l[i], symbol=symbol, open=o_l[i]))
            guard = protective.get(symbol) if protective else None
            # Cheap pre-check: a gap through a level also shows in the bar's low or high.
            if guard is not None and (l_l[i] <= guard.stop or h_l[i] >= guard.target):
                apply(
                    simulate_protective_fill(
                        state, desk, ts=ts_l[i], symbol=symbol, open=o_l[i], high=h_l[i], low=l_l[i]
                    )
                )
            close = c_l[i]
            last_close[symbol] = close
            if windows is not None:
                windows.update(symbol, ts_l[i], close)
            if regime_l and regime_l[i] != last_regime.get(symbol, ""):
                emit(timeline.regime_change(i, symbol, last_regime.get(symbol, ""), ts_l[i]))
                last_regime[symbol] = regime_l[i]
            side = side_l[i]
            if side:
                values = timeline.values_at(i)
                emit(
                    Signal(
                        ts=ts_l[i],
                        symbol=symbol,
                        strategy=strategy_name,
                        side="buy" if side == BUY else "sell",
                        price=close,
                        reason=describe(side, values),
                        values=values,
                    )
                )
                if side == BUY:
                    apply(
                        decide_entry(
                            state,
                            desk,
                            ts=ts_l[i],
                            day=day_l[i],
                            symbol=symbol,
                            strategy=strategy_name,
                            price=close,
                            equity=state.equity(last_close),
                            context=context_at(i)
                            if windows is None
                            else correlation_context(context_at(i), state, windows, symbol),
                            size_factor=values.get("size_factor", 1.0),
                        )
                    )
                else:
                    apply(decide_exit(state, ts=ts_l[i], symbol=symbol, reason="signal", price=close))
            if i == last_index[symbol] and (symbol in positions or symbol in market_orders):
                _close_out(state, desk, apply, ts=ts_l[i], symbol=symbol, close=close)
            if not group_end_l[i]:
                continue
            # Every symbol has reported this timestamp: track equity, and mark it at a session's end.
            period_bars += 1
            if positions or state.cash_cents != seen_cash:
                seen_cash = state.cash_cents
                equity = state.equity(last_close)
                if equity > peak:
                    peak = equity
                drawdown = peak - equity
                if drawdown > period_dd:
                    period_dd = drawdown
                if drawdown / peak * 100.0 > period_dd_pct:
                    period_dd_pct = drawdown / peak * 100.0
                if positions:
                    period_in_market += 1
            if session_end_l[i] or i == final:
                apply(
                    [
                        EquityMarked(
                            ts=ts_l[i],
                            equity=equity,
                            cash=state.cash,
                            peak=peak,
                            drawdown=period_dd,
                            drawdown_pct=period_dd_pct,
                            bars=period_bars,
                            bars_in_market=period_in_market,
                        )
                    ]
                )
                period_dd = period_dd_pct = 0.0
                period_bars = period_in_market = 0
        if sink is not None:
            sink(out[sent:])
            sent = len(out)
        if progress is not None:
            progress(min(n, chunk_start + PROGRESS_EVERY), n)
    emit(run_ended(series, run_id=run_id, ts=int(ts_l[final]), bars=n))
    if sink is not None:
        sink(out[sent:])
    return out


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
    if order is not None and order.side == "buy":
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
    """All symbols' bars merged by (timestamp, symbol) into plain lists for the per-bar loop."""

    def __init__(self, series: Sequence[BarSeries], strategy: Strategy, risk: RiskConfig) -> None:
        self.names = [s.symbol for s in series]
        ts = np.concatenate([s.ts for s in series])
        sym = np.concatenate([np.full(len(s), k, dtype=np.int64) for k, s in enumerate(series)])
        order = np.lexsort((sym, ts)) if len(series) > 1 else np.arange(ts.shape[0])
        ts, sym = ts[order], sym[order]
        signals = [strategy.signals(s) for s in series]

        def merged(columns: list[np.ndarray]) -> list[Any]:
            return np.concatenate(columns)[order].tolist()  # type: ignore[no-any-return]

        self.ts: list[int] = ts.tolist()
        self.symbol: list[int] = sym.tolist()
        self.open = merged([s.open for s in series])
        self.high = merged([s.high for s in series])
        self.low = merged([s.low for s in series])
        self.close = merged([s.close for s in series])
        self.side: list[int] = merged([sig.side for sig in signals])
        self.day: list[int] = merged([s.session for s in series])
        self._values = {
            name: merged([sig.values[name] for sig in signals])
            for name in (signals[0].values if signals else {})
        }
        n = ts.shape[0]
        group_end = np.ones(n, dtype=bool)
        group_end[:-1] = ts[1:] != ts[:-1]
        day = np.asarray(self.day, dtype=np.int64)
        session_end = np.ones(n, dtype=bool)
        session_end[:-1] = day[1:] != day[:-1]
        self.group_end: list[bool] = group_end.tolist()
        self.session_end: list[bool] = (session_end & group_end).tolist()
        self.last_index = {self.names[k]: int(np.flatnonzero(sym == k)[-1]) for k in range(len(series))}
        self._atr: list[float] = []
        self._avg_volume: list[float] = []
        self.regime: list[str] = []
        self._regime_values: list[tuple[float, float]] = []
        if needs_context(risk):  # causal: the values at bar i use bars <= i only
            self._atr = merged([atr(s.high, s.low, s.close, risk.atr_period) for s in series])
            self._avg_volume = merged([sma(s.volume, risk.volume_window) for s in series])
        if risk.allowed_regimes:
            found = [
                regimes(
                    s.high, s.low, s.close, trend_adx=risk.trend_adx, volatile_atr_pct=risk.volatile_atr_pct
                )
                for s in series
            ]
            names_all, adx_all, pct_all = _flat(found, 0), _flat(found, 1), _flat(found, 2)
            positions = order.tolist()
            self.regime = [names_all[k] for k in positions]
            self._regime_values = [(adx_all[k], pct_all[k]) for k in positions]

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
        return {name: column[i] for name, column in self._values.items()}
