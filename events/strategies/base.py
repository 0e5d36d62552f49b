"""What a strategy is: typed parameters, a warm-up, and one or both of two forms of the same rule.

A strategy decides only buy / sell / hold from bars it has already seen. Sizing, risk and orders belong
to the portfolio. A strategy may be written in either form, or both:

- vectorised: ``signals(bars)`` returns the side of every bar at once (an int8 array, or a
  :class:`SignalSeries` with the indicator values behind it);
- incremental: ``on_bar(bar)`` takes one bar and returns its side (or ``(side, values)``), with
  ``start()`` resetting whatever state it keeps (built-ins return a ready object from ``live()``).

Backtests always run the vectorised form and live actors the incremental one; the form not written is
derived from the other (:meth:`Strategy.signals` steps through the bars; :meth:`Strategy.live`
re-evaluates the vectorised form on the bars seen so far) and ``tape check`` proves the two equal.

What a strategy outputs is declared by ``output``: ``"sides"`` (the default) or ``"targets"``, a signed
target position per bar (+1 long, -1 short, 0 flat, or a fraction of the sized quantity; NaN keeps the
previous one), written as ``targets(bars)`` and/or an ``on_bar`` returning the target. A targets
strategy runs through the same engine: its targets become sides (:func:`sides_from_targets`: a change of
sign is BUY, SELL or FLAT, the size fraction rides along as ``size_factor``), and a sides strategy's
position under a direction is :func:`targets_from_sides`; the two derive each other exactly, so
``tape check`` covers a target strategy's every value. Portfolio weights will be a further kind; a
strategy that declares none is a sides strategy, so adding kinds breaks nothing.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple, Protocol

import msgspec
import numpy as np

from tape.events.bars import BarSeries
from tape.events.errors import StrategyContractError

BUY, SELL, HOLD = 1, -1, 0
FLAT = 2  # close whatever is held (a target of 0 after a position; a sides strategy never needs it)
SIDES = frozenset((BUY, SELL, HOLD, FLAT))
OUTPUT_KINDS = ("sides", "targets")  # what a strategy may declare as ``output`` (grows by addition)


class SignalSeries(NamedTuple):
    """Vectorised output: ``side[i]`` is BUY/SELL/HOLD decided at bar i's close; ``values`` are the
    indicator arrays behind it (recorded on Signal events)."""

    side: np.ndarray  # int8
    values: dict[str, np.ndarray]


class Bar(NamedTuple):
    """One bar as the incremental form sees it (the live path carries no timestamp)."""

    open: float
    high: float
    low: float
    close: float
    volume: float


class LiveSignals(Protocol):
    """Incremental form: one bar in, the side and indicator values at that bar out (O(1) work)."""

    def on_bar(
        self, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[int, dict[str, float]]:
        """Feed the next bar; returns (side, values) as of its close."""
        ...


class NoParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A strategy without parameters."""


class Strategy(ABC):
    """A named, parameterised signal generator. Subclasses set ``Params`` (a msgspec Struct) and
    ``warmup()``, and write ``signals(bars)``, ``on_bar(bar)`` (or ``live()``), or both.

    ``name`` defaults to the class name and ``summary`` to the first line of its docstring.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Params: ClassVar[type[msgspec.Struct]] = NoParams
    output: ClassVar[str] = "sides"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = cls.__name__
        if not cls.__dict__.get("summary"):
            cls.summary = (cls.__doc__ or "").strip().partition("\n")[0]
        written = cls.__dict__.get("signals")
        if written is not None and not getattr(written, "_normalised", False):
            cls.signals = _normalising(written)  # type: ignore[method-assign]

    def __init__(self, params: Any) -> None:
        self.params = params

    @abstractmethod
    def warmup(self) -> int:
        """Bars needed for the first signal: it may come on bar index ``warmup() - 1``."""

    @classmethod
    def forms(cls) -> tuple[bool, bool]:
        """(vectorised written, incremental written) by the class itself (not derived)."""
        vectorised = _overrides(cls, "signals") or _overrides(cls, "targets")
        incremental = _overrides(cls, "on_bar") or _overrides(cls, "live")
        return vectorised, incremental

    def signals(self, bars: BarSeries) -> SignalSeries:
        """Sides for every bar at once (causal: side at i uses bars <= i only).

        Not written: derived from ``targets(bars)`` when the strategy writes that, else by stepping the
        incremental form through the bars (one Python call per bar).
        """
        if _overrides(type(self), "targets"):
            return sides_from_targets(self.targets(bars), len(bars), type(self).__name__)
        if not self.forms()[1]:
            raise StrategyContractError(f"{type(self).__name__} writes neither signals() nor on_bar()")
        return step_through(self.live(), bars)

    def live(self) -> LiveSignals:
        """A fresh incremental signal generator with the same parameters.

        Derived from ``on_bar`` on a fresh instance when written; otherwise from ``signals`` re-evaluated
        on the bars seen so far (exact, and O(bars seen) per bar).
        """
        vectorised, incremental = self.forms()
        if incremental:
            fresh = type(self)(self.params)
            fresh.start()
            return _TargetStepper(fresh) if self.output == "targets" else _Stepper(fresh)
        if not vectorised:
            raise StrategyContractError(f"{type(self).__name__} writes neither signals() nor on_bar()")
        return _Reevaluating(self)

    def start(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Reset the incremental form's state (called on a fresh instance before its first bar)."""

    def on_bar(self, bar: Bar) -> int | tuple[int, dict[str, float]]:
        """The incremental form: this bar's side (or ``(side, values)``) given the bars before it."""
        raise NotImplementedError

    def targets(self, bars: BarSeries) -> np.ndarray:
        """A targets strategy's vectorised form: the signed target position at every bar's close
        (+1 long, -1 short, 0 flat, a fraction for less; NaN keeps the previous target)."""
        raise NotImplementedError

    def describe(self, side: int, values: dict[str, float]) -> str:
        """One human sentence for a signal (recorded on the Signal event)."""
        return "buy" if side == BUY else "sell" if side == SELL else "flat" if side == FLAT else "hold"

    def param_dict(self) -> dict[str, Any]:
        """Parameters as a plain dict (recorded on RunStarted)."""
        return msgspec.to_builtins(self.params)  # type: ignore[no-any-return]


def _overrides(cls: type, method: str) -> bool:
    return any(
        method in klass.__dict__ for klass in cls.__mro__ if klass is not Strategy and klass is not object
    )


def _normalising(method: Any) -> Any:
    """Wrap a written ``signals`` so callers always get a checked SignalSeries of int8 sides."""

    @functools.wraps(method)
    def signals(self: Strategy, bars: BarSeries) -> SignalSeries:
        return as_signal_series(method(self, bars), len(bars), type(self).__name__)

    signals._normalised = True  # type: ignore[attr-defined]
    return signals


def as_signal_series(out: Any, n: int, who: str) -> SignalSeries:
    """The vectorised output as a SignalSeries: one int8 side per bar in {-1, 0, 1}, values of length n."""
    if isinstance(out, tuple) and len(out) == 2 and not isinstance(out, np.ndarray):
        side, values = out
    else:
        side, values = out, {}
    if not isinstance(side, np.ndarray) or side.ndim != 1:
        raise StrategyContractError(
            f"{who}.signals() must return a 1-D numpy array of sides, got {type(side).__name__}"
        )
    if side.shape[0] != n:
        raise StrategyContractError(f"{who}.signals() returned {side.shape[0]} sides for {n} bars")
    if side.dtype != np.int8:
        if not np.issubdtype(side.dtype, np.integer):
            raise StrategyContractError(f"{who}.signals() sides must be integers (int8), got {side.dtype}")
        side = side.astype(np.int8)
    bad = np.flatnonzero((side != BUY) & (side != SELL) & (side != HOLD) & (side != FLAT))
    if bad.size:
        raise StrategyContractError(
            f"{who}.signals() side {side[bad[0]]} at bar {bad[0]} is not BUY, SELL, HOLD or FLAT"
        )
    if not isinstance(values, dict):
        raise StrategyContractError(f"{who}.signals() values must be a dict of arrays")
    checked: dict[str, np.ndarray] = {}
    for key, column in values.items():
        column = np.asarray(column, dtype=np.float64)
        if column.shape != (n,):
            raise StrategyContractError(
                f"{who}.signals() value {key!r} has {column.shape[0]} entries for {n} bars"
            )
        checked[str(key)] = column
    return SignalSeries(side, checked)


def as_live_output(out: Any, who: str) -> tuple[int, dict[str, float]]:
    """One incremental output as (side, values): a bare side or a (side, values) pair."""
    side, values = out if isinstance(out, tuple) else (out, {})
    if isinstance(side, bool) or side not in SIDES:
        raise StrategyContractError(
            f"{who}.on_bar() returned {side!r}; a side is BUY (1), SELL (-1), HOLD (0) or FLAT (2)"
        )
    return int(side), values if values else {}


def step_through(live: LiveSignals, bars: BarSeries) -> SignalSeries:
    """The vectorised form of an incremental one: every bar through it, outputs collected."""
    n = len(bars)
    side = np.zeros(n, dtype=np.int8)
    values: dict[str, np.ndarray] = {}
    on_bar = live.on_bar
    o, h, lo, c, v = (
        bars.open.tolist(),
        bars.high.tolist(),
        bars.low.tolist(),
        bars.close.tolist(),
        bars.volume.tolist(),
    )
    for i in range(n):
        s, vals = on_bar(o[i], h[i], lo[i], c[i], v[i])
        side[i] = s
        for key, value in vals.items():
            column = values.get(key)
            if column is None:
                column = values[key] = np.full(n, np.nan)
            column[i] = value
    return SignalSeries(side, values)


class _Stepper:
    """The live protocol over a strategy's own ``on_bar``."""

    __slots__ = ("_on_bar", "_who")

    def __init__(self, strategy: Strategy) -> None:
        self._on_bar, self._who = strategy.on_bar, type(strategy).__name__

    def on_bar(
        self, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[int, dict[str, float]]:
        return as_live_output(self._on_bar(Bar(open, high, low, close, volume)), self._who)


class _Reevaluating:
    """The incremental form of a vectorised-only strategy: its ``signals`` on every bar seen so far,
    read at the last bar. Exact by construction; costs O(bars seen) per bar. The bars it builds carry
    their position (0, 1, ...) as ``ts`` and ``session``: the live path has no timestamps."""

    __slots__ = ("_cols", "_n", "_strategy")

    def __init__(self, strategy: Strategy) -> None:
        self._strategy = strategy
        self._cols = np.zeros((5, 256), dtype=np.float64)
        self._n = 0

    def on_bar(
        self, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[int, dict[str, float]]:
        if self._n == self._cols.shape[1]:
            self._cols = np.concatenate([self._cols, np.zeros_like(self._cols)], axis=1)
        self._cols[:, self._n] = (open, high, low, close, volume)
        self._n += 1
        n = self._n
        ts = np.arange(n, dtype=np.int64)
        o, h, lo, c, v = (col[:n].copy() for col in self._cols)
        out = self._strategy.signals(BarSeries("", "", ts, o, h, lo, c, v, session=ts))
        return int(out.side[-1]), {k: float(col[-1]) for k, col in out.values.items()}


def sides_from_targets(targets: Any, n: int, who: str) -> SignalSeries:
    """The sides of a target series: where the target's sign changes, BUY (to long), SELL (to short)
    or FLAT (to 0); HOLD elsewhere (a change of size within one sign is held). NaN keeps the previous
    target, which starts flat. Values: the target as given and ``size_factor`` (its magnitude), which
    sizes the entry."""
    target = np.asarray(targets, dtype=np.float64)
    if target.ndim != 1 or target.shape[0] != n:
        raise StrategyContractError(
            f"{who}.targets() must return one target per bar ({n}), got {target.shape}"
        )
    defined = ~np.isnan(target)
    bad = np.flatnonzero(defined & ~(np.abs(np.where(defined, target, 0.0)) <= 1.0))
    if bad.size:
        raise StrategyContractError(
            f"{who}.targets() target {target[bad[0]]} at bar {bad[0]} is not in [-1, 1]"
        )
    index = np.maximum.accumulate(np.where(defined, np.arange(n), -1)) if n else np.zeros(0, np.int64)
    held = np.where(index >= 0, target[np.maximum(index, 0)], 0.0)
    sign = np.sign(held).astype(np.int8)
    previous = np.concatenate([np.zeros(1, np.int8), sign[:-1]]) if n else sign
    side = np.zeros(n, dtype=np.int8)
    changed = sign != previous
    side[changed & (sign > 0)] = BUY
    side[changed & (sign < 0)] = SELL
    side[changed & (sign == 0)] = FLAT
    return SignalSeries(side, {"target": target, "size_factor": np.abs(held)})


def targets_from_sides(side: np.ndarray, direction: str = "both") -> np.ndarray:
    """The signed position (+1, -1, 0) a sides series holds under ``direction`` after each bar:
    long: BUY +1, SELL 0; short: SELL -1, BUY 0; both (stop-and-reverse): BUY +1, SELL -1; FLAT 0.
    :func:`sides_from_targets` of it gives the sides back (for ``both``, exactly)."""
    moves = {
        "long": {BUY: 1.0, SELL: 0.0, FLAT: 0.0},
        "short": {BUY: 0.0, SELL: -1.0, FLAT: 0.0},
        "both": {BUY: 1.0, SELL: -1.0, FLAT: 0.0},
    }[direction]
    out = np.zeros(side.shape[0], dtype=np.float64)
    held = 0.0
    for i, s in enumerate(side.tolist()):
        held = moves.get(s, held)
        out[i] = held
    return out


class _TargetStepper:
    """The live protocol over a targets strategy's own ``on_bar``: its targets turned into sides bar
    by bar, as :func:`sides_from_targets` does for the whole series."""

    __slots__ = ("_held", "_on_bar", "_who")

    def __init__(self, strategy: Strategy) -> None:
        self._on_bar, self._who = strategy.on_bar, type(strategy).__name__
        self._held = 0.0

    def on_bar(
        self, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[int, dict[str, float]]:
        out = self._on_bar(Bar(open, high, low, close, volume))
        target, values = out if isinstance(out, tuple) else (out, {})
        target = float(target)
        if target == target:
            if not abs(target) <= 1.0:
                raise StrategyContractError(f"{self._who}.on_bar() target {target} is not in [-1, 1]")
            before, self._held = self._held, target
            if (before > 0) != (target > 0) or (before < 0) != (target < 0):
                side = BUY if target > 0 else SELL if target < 0 else FLAT
                return side, {**values, "target": target, "size_factor": abs(target)}
        return HOLD, {**values, "target": target, "size_factor": abs(self._held)}


def crossings(above: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """BUY where ``above`` turns true, SELL where it turns false; both bars must be ``valid``."""
    side = np.zeros(above.shape[0], dtype=np.int8)
    if above.shape[0] < 2:
        return side
    both = valid[1:] & valid[:-1]
    side[1:][both & above[1:] & ~above[:-1]] = BUY
    side[1:][both & ~above[1:] & above[:-1]] = SELL
    return side


class Crossing:
    """Incremental twin of :func:`crossings`."""

    __slots__ = ("_prev",)

    def __init__(self) -> None:
        self._prev: bool | None = None

    def update(self, above: bool, valid: bool) -> int:
        """The side at this bar given whether the condition holds and whether it is defined."""
        if not valid:
            self._prev = None
            return HOLD
        prev, self._prev = self._prev, above
        if prev is None or prev == above:
            return HOLD
        return BUY if above else SELL


def rising_edges(condition: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """True at bars where ``condition`` becomes true (it was false, and defined, the bar before)."""
    out = np.zeros(condition.shape[0], dtype=bool)
    if condition.shape[0] > 1:
        out[1:] = condition[1:] & ~condition[:-1] & valid[1:] & valid[:-1]
    return out


class RisingEdge:
    """Incremental twin of :func:`rising_edges`."""

    __slots__ = ("_prev",)

    def __init__(self) -> None:
        self._prev: bool | None = None

    def update(self, condition: bool, valid: bool) -> bool:
        """Whether the condition became true at this bar."""
        if not valid:
            self._prev = None
            return False
        prev, self._prev = self._prev, condition
        return prev is not None and condition and not prev


def sides_from(buy: np.ndarray, sell: np.ndarray) -> np.ndarray:
    """BUY/SELL/HOLD per bar from two masks (a bar that is both holds)."""
    side = np.zeros(buy.shape[0], dtype=np.int8)
    side[buy & ~sell] = BUY
    side[sell & ~buy] = SELL
    return side


def side_of(buy: bool, sell: bool) -> int:
    """Incremental twin of :func:`sides_from` for one bar."""
    if buy == sell:
        return HOLD
    return BUY if buy else SELL
