"""Ensemble: k-of-n voting over member strategies, optionally weighted by their recent performance and
restricted to the members suited to the current regime.

Each member votes "long" from its buy until its sell. The ensemble is long while the (weighted) long
votes reach ``k``: it buys when they reach it and sells when they fall below. With ``weighting =
performance`` a member's vote counts in proportion to the return its own long periods made over the last
``perf_window`` bars (losing members get no say). With ``by_regime`` trend followers vote only in trending
markets and mean-reverters only in ranging ones. ``size_factor`` (the share of the votes that agree) is
recorded on each signal and scales the position: disagreement means a smaller bet.

The live form runs :class:`_Combiner` bar by bar over the members' sides (which are themselves proven
equal between the vectorised and incremental forms). The vectorised form runs the same combiner when
votes are weighted by performance; with equal weights it counts the votes for all bars at once with the
same float operations (:func:`_equal_votes`), so both forms agree exactly (tests/test_ensemble.py).
"""

from __future__ import annotations

from collections import deque
from typing import Annotated, Any

import msgspec
import numpy as np

from tape.events.bars import BarSeries
from tape.events.regime import RANGING, TRENDING, RegimeTracker, regimes
from tape.events.strategies.base import BUY, HOLD, SELL, LiveSignals, SignalSeries, Strategy

TREND_FOLLOWERS = frozenset({"sma_cross", "macd", "atr_breakout"})
MEAN_REVERTERS = frozenset({"rsi", "mean_reversion"})


class EnsembleParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Members (registered strategy names, default parameters), votes needed and how votes are weighed."""

    members: Annotated[str, msgspec.Meta(description="comma-separated member strategies")] = (
        "sma_cross,rsi,macd,mean_reversion"
    )
    k: Annotated[float, msgspec.Meta(gt=0, le=20, description="(weighted) long votes needed to be long")] = (
        2.0
    )
    weighting: Annotated[str, msgspec.Meta(description="equal or performance")] = "equal"
    perf_window: Annotated[int, msgspec.Meta(ge=2, le=10_000, description="bars of member performance")] = 60
    by_regime: Annotated[bool, msgspec.Meta(description="let only regime-suited members vote")] = False

    def __post_init__(self) -> None:
        names = self.member_names
        if len(names) < 2:
            raise ValueError("an ensemble needs at least two members")
        if "ensemble" in names:
            raise ValueError("an ensemble cannot contain itself")
        if self.weighting not in ("equal", "performance"):
            raise ValueError(f"weighting must be equal or performance, got {self.weighting!r}")
        if self.k > len(names):
            raise ValueError(f"k ({self.k:g}) cannot exceed the number of members ({len(names)})")

    @property
    def member_names(self) -> list[str]:
        return [m.strip() for m in self.members.split(",") if m.strip()]


class _Combiner:
    """The voting rule, one bar at a time (shared by both forms)."""

    __slots__ = (
        "_k",
        "_perf",
        "_prev_close",
        "_regime_aware",
        "_suited",
        "_sums",
        "_was_long",
        "_window",
        "long",
    )

    def __init__(self, p: EnsembleParams) -> None:
        names = p.member_names
        self._k = p.k
        self._perf = p.weighting == "performance"
        self._regime_aware = p.by_regime
        self.long = [False] * len(names)
        self._window: list[deque[float]] = [deque(maxlen=p.perf_window) for _ in names]
        self._sums = [0.0] * len(names)  # running sum of each member's recent long-period returns
        self._prev_close: float | None = None
        self._was_long = False
        self._suited = [
            (TRENDING if n in TREND_FOLLOWERS else RANGING if n in MEAN_REVERTERS else "") for n in names
        ]

    def step(self, close: float, sides: list[int], regime: str) -> tuple[int, float, float]:
        """(side, score, size factor) after this bar."""
        long = self.long
        if self._perf:
            previous = self._prev_close
            bar_return = close / previous - 1.0 if previous else 0.0
            for m, window in enumerate(self._window):
                value = bar_return if long[m] else 0.0  # the bar's move counts for members long into it
                if len(window) == window.maxlen:
                    self._sums[m] -= window[0]
                window.append(value)
                self._sums[m] += value
        self._prev_close = close
        for m, side in enumerate(sides):
            if side == BUY:
                long[m] = True
            elif side == SELL:
                long[m] = False
        total = long_votes = 0.0
        n_voting = 0
        for m in range(len(long)):
            if self._regime_aware and self._suited[m] and self._suited[m] != regime:
                continue
            weight = max(self._sums[m], 0.0) if self._perf else 1.0
            n_voting += 1
            total += weight
            if long[m]:
                long_votes += weight
        # Weighted votes are rescaled to member counts so k means the same thing in both weightings.
        score = long_votes / total * n_voting if total > 0 else 0.0
        is_long = score >= self._k
        side = HOLD
        if is_long != self._was_long:
            side = BUY if is_long else SELL
        self._was_long = is_long
        return side, score, (long_votes / total) if total > 0 else 0.0


class Ensemble(Strategy):
    """k-of-n voting over registered strategies."""

    name = "ensemble"
    summary = (
        "k-of-n vote of member strategies, weighted by recent performance, regime-aware, sized by agreement"
    )
    Params = EnsembleParams

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        from tape.events.strategies import make_strategy  # the registry imports this module

        self.members = [make_strategy(n) for n in params.member_names]

    def warmup(self) -> int:
        return max(m.warmup() for m in self.members) + 1

    def signals(self, bars: BarSeries) -> SignalSeries:
        member_sides = [m.signals(bars).side for m in self.members]
        found = regimes(bars.high, bars.low, bars.close)[0] if self.params.by_regime else None
        if self.params.weighting == "equal":
            side, score, size, longs = _equal_votes(self.params, member_sides, found)
        else:
            side, score, size, longs = _combined(self.params, bars, member_sides, found)
        values = {"score": score, "size_factor": size}
        for name, column in zip(self.params.member_names, longs, strict=True):
            values[f"long_{name}"] = column.astype(np.float64)
        return SignalSeries(side, values)

    def live(self) -> LiveSignals:
        return _LiveEnsemble(self)

    def describe(self, side: int, values: dict[str, float]) -> str:
        longs = [k.removeprefix("long_") for k, v in values.items() if k.startswith("long_") and v]
        verb = "reached" if side == BUY else "fell below"
        members = ", ".join(longs) or "none"
        return f"long votes {values['score']:.2f} {verb} k={self.params.k:g} (long: {members})"


class _LiveEnsemble:
    __slots__ = ("_combiner", "_keys", "_members", "_regime")

    def __init__(self, ensemble: Ensemble) -> None:
        self._members = [m.live() for m in ensemble.members]
        self._combiner = _Combiner(ensemble.params)
        self._regime = RegimeTracker() if ensemble.params.by_regime else None
        self._keys = [f"long_{name}" for name in ensemble.params.member_names]

    def on_bar(
        self, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[int, dict[str, float]]:
        sides = [m.on_bar(open, high, low, close, volume)[0] for m in self._members]
        regime = self._regime.update(high, low, close) if self._regime is not None else ""
        side, score, size = self._combiner.step(close, sides, regime)
        values = {"score": score, "size_factor": size}
        for key, lg in zip(self._keys, self._combiner.long, strict=True):
            values[key] = 1.0 if lg else 0.0
        return side, values


VoteColumns = tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]  # side, score, size, longs


def _equal_votes(p: EnsembleParams, member_sides: list[np.ndarray], found: list[str] | None) -> VoteColumns:
    """:class:`_Combiner` with equal weights, for every bar at once.

    Every weight is 1.0, so the vote totals are small whole numbers (exact in any order) and the score and
    size factor come out of the same two float operations as in the combiner: bit-identical.
    """
    n = member_sides[0].shape[0] if member_sides else 0
    longs = [_latched_long(side) for side in member_sides]
    voters = np.zeros(n)
    long_votes = np.zeros(n)
    regime = np.asarray(found if found is not None else [""] * n)
    for name, long in zip(p.member_names, longs, strict=True):
        suited = TRENDING if name in TREND_FOLLOWERS else RANGING if name in MEAN_REVERTERS else ""
        votes = regime == suited if p.by_regime and suited else np.ones(n, dtype=bool)
        voters += votes
        long_votes += votes & long
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(voters > 0, long_votes / voters * voters, 0.0)
        size = np.where(voters > 0, long_votes / voters, 0.0)
    is_long = score >= p.k
    was_long = np.zeros(n, dtype=bool)
    was_long[1:] = is_long[:-1]
    side = np.where(is_long & ~was_long, BUY, np.where(~is_long & was_long, SELL, HOLD)).astype(np.int8)
    return side, score, size, longs


def _latched_long(side: np.ndarray) -> np.ndarray:
    """Whether a member is long at each bar: its latest buy or sell (if any) up to the bar was a buy."""
    index = np.where(side != HOLD, np.arange(side.shape[0]), 0)
    return side[np.maximum.accumulate(index)] == BUY if side.shape[0] else np.zeros(0, dtype=bool)


def _combined(
    p: EnsembleParams, bars: BarSeries, member_sides: list[np.ndarray], found: list[str] | None
) -> VoteColumns:
    """Run :class:`_Combiner` bar by bar (performance weights depend on the path, so no shortcut)."""
    combiner = _Combiner(p)
    n = len(bars)
    side, score, size = [0] * n, [0.0] * n, [0.0] * n
    longs: list[list[bool]] = [[False] * n for _ in member_sides]
    closes = bars.close.tolist()
    step, flags = combiner.step, combiner.long
    rows = list(zip(*(s.tolist() for s in member_sides), strict=True)) if member_sides else []
    for i in range(n):
        side[i], score[i], size[i] = step(closes[i], rows[i], found[i] if found else "")  # type: ignore[arg-type]
        for m, lg in enumerate(flags):
            longs[m][i] = lg
    columns = [np.asarray(c) for c in longs]
    return np.asarray(side, dtype=np.int8), np.asarray(score), np.asarray(size), columns
