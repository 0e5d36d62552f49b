"""Portfolio strategies: one rule over a whole universe, giving target weights instead of sides.

A portfolio strategy reads every symbol's bars at once (a :class:`~tape.events.panel.Panel`) and says
what share of the equity each symbol should hold. It may be written in either form, or both:

- vectorised: ``weights(panel)`` returns the weights of every bar at once, shaped bars x symbols (or a
  :class:`Weights` with the recorded values behind them, e.g. each symbol's score and rank);
- incremental: ``on_bars(section)`` takes every symbol's bar at t and returns that row.

NaN means "no opinion: keep what is held"; a symbol not tradable at t gets 0 or NaN. The engine reads
the weights only on rebalance bars (``rebalance`` of its parameters). The form not written is derived
from the other, and ``tape check`` proves the two equal.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, NamedTuple

import msgspec
import numpy as np

from tape.events.bars import BarSeries
from tape.events.errors import StrategyContractError
from tape.events.panel import CrossSection, Panel
from tape.events.strategies.base import SignalSeries, Strategy

SCHEDULES = ("bar", "daily", "weekly", "monthly", "quarterly")


class RebalanceParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How weights become orders; every portfolio strategy's Params extends these."""

    rebalance: Annotated[
        str, msgspec.Meta(description="bar, daily, weekly, monthly or quarterly (first trading day)")
    ] = "monthly"
    drift: Annotated[
        float,
        msgspec.Meta(ge=0, le=100, description="also rebalance when a weight drifts this many % points"),
    ] = 0.0
    max_weight: Annotated[float, msgspec.Meta(gt=0, le=100, description="cap per symbol (% of equity)")] = (
        100.0
    )
    cash_buffer: Annotated[float, msgspec.Meta(ge=0, lt=100, description="% of equity kept in cash")] = 0.0
    min_trade: Annotated[float, msgspec.Meta(ge=0, description="no order worth less than this ($)")] = 0.0

    def __post_init__(self) -> None:
        if self.rebalance not in SCHEDULES:
            raise ValueError(f"rebalance must be one of {', '.join(SCHEDULES)}, got {self.rebalance!r}")


class Weights(NamedTuple):
    """Vectorised output: ``weights[t, j]`` decided at row t's close; ``values`` the recorded arrays
    behind them (same shape), named e.g. ``score`` and ``rank``."""

    weights: np.ndarray
    values: dict[str, np.ndarray]


class PortfolioStrategy(Strategy):
    """A named, parameterised rule giving target weights over a universe. Subclasses set ``Params``
    (extending :class:`RebalanceParams`) and ``warmup()``, and write ``weights(panel)``,
    ``on_bars(section)``, or both. Weights are fractions of equity (0.2 = 20 %), long only on this
    version of tape (a negative weight is refused)."""

    Params: ClassVar[type[msgspec.Struct]] = RebalanceParams
    output: ClassVar[str] = "weights"

    def warmup(self) -> int:
        """Rows before the first weight may appear (0: from the first)."""
        return 0

    @classmethod
    def forms(cls) -> tuple[bool, bool]:
        """(vectorised written, incremental written) by the class itself."""
        own = [k for k in cls.__mro__ if k not in (PortfolioStrategy, Strategy, object)]
        return any("weights" in k.__dict__ for k in own), any("on_bars" in k.__dict__ for k in own)

    def signals(self, bars: BarSeries) -> SignalSeries:
        """A portfolio strategy gives weights over a universe, not one symbol's sides."""
        raise StrategyContractError(f"{type(self).__name__} is a portfolio strategy: it gives weights()")

    def weights(self, panel: Panel) -> Weights | np.ndarray:
        """Weights of every row at once (causal: row t uses rows <= t only). Not written: derived by
        stepping the incremental form through the rows."""
        if not self.forms()[1]:
            raise StrategyContractError(f"{type(self).__name__} writes neither weights() nor on_bars()")
        fresh = type(self)(self.params)
        fresh.start()
        rows = [
            as_weight_row(fresh.on_bars(panel.row(t)), panel.width, type(self).__name__)
            for t in range(len(panel))
        ]
        return _stacked(rows, panel)

    def on_bars(self, section: CrossSection) -> Any:
        """The incremental form: this row's weights (or ``(weights, values)``)."""
        raise NotImplementedError

    def describe_weights(self, values: dict[str, float]) -> str:
        """One human phrase for a symbol's weight from its recorded values (``tape explain``)."""
        return ", ".join(f"{k} {v:.4g}" for k, v in values.items())


def weights_of(strategy: PortfolioStrategy, panel: Panel) -> Weights:
    """The strategy's vectorised output, checked: float weights and values shaped like the panel."""
    who = type(strategy).__name__
    out = strategy.weights(panel)
    weights, values = out if isinstance(out, tuple) and not isinstance(out, np.ndarray) else (out, {})
    shape = (len(panel), panel.width)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != shape:
        raise StrategyContractError(f"{who}.weights() returned shape {weights.shape}, expected {shape}")
    checked = {}
    for key, column in (values or {}).items():
        column = np.asarray(column, dtype=np.float64)
        if column.shape != shape:
            raise StrategyContractError(
                f"{who}.weights() value {key!r} has shape {column.shape}, not {shape}"
            )
        checked[str(key)] = column
    return Weights(weights, checked)


def as_weight_row(out: Any, width: int, who: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One incremental output as (weights, values), each of ``width`` floats."""
    row, values = out if isinstance(out, tuple) else (out, {})
    row = np.asarray(row, dtype=np.float64)
    if row.shape != (width,):
        raise StrategyContractError(f"{who}.on_bars() returned shape {row.shape}, expected ({width},)")
    return row, {str(k): np.asarray(v, dtype=np.float64).reshape(width) for k, v in (values or {}).items()}


def _stacked(rows: list[tuple[np.ndarray, dict[str, np.ndarray]]], panel: Panel) -> Weights:
    shape = (len(panel), panel.width)
    weights = np.vstack([r[0] for r in rows]) if rows else np.zeros(shape)
    values: dict[str, np.ndarray] = {}
    for t, (_, vals) in enumerate(rows):
        for key, value in vals.items():
            values.setdefault(key, np.full(shape, np.nan))[t] = value
    return Weights(weights, values)


class ReevaluatingWeights:
    """The incremental form of a vectorised-only strategy: its ``weights`` on every row seen so far,
    read at the last row (exact by construction; O(rows seen) per row)."""

    def __init__(self, strategy: PortfolioStrategy, symbols: tuple[str, ...]) -> None:
        self._strategy, self._symbols = strategy, symbols
        self._rows: list[CrossSection] = []

    def on_bars(self, section: CrossSection) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Feed the next row; its weights and values."""
        self._rows.append(section)
        panel = panel_from_rows(self._symbols, self._rows)
        out = weights_of(self._strategy, panel)
        return out.weights[-1], {k: v[-1] for k, v in out.values.items()}


def incremental(strategy: PortfolioStrategy, symbols: tuple[str, ...]) -> Any:
    """A fresh incremental generator: the strategy's own ``on_bars`` when written, else derived."""
    if strategy.forms()[1]:
        fresh = type(strategy)(strategy.params)
        fresh.start()
        return fresh
    return ReevaluatingWeights(strategy, symbols)


def panel_from_rows(symbols: tuple[str, ...], rows: list[CrossSection]) -> Panel:
    """The panel of the rows fed so far."""
    ts = np.array([r.ts for r in rows], dtype=np.int64)
    stack = {
        name: np.vstack([getattr(r, name) for r in rows])
        for name in ("open", "high", "low", "close", "volume")
    }
    tradable = np.vstack([r.tradable for r in rows])
    session = np.array([r.session for r in rows], dtype=np.int64)
    return Panel(symbols, ts, session, **stack, tradable=tradable)
