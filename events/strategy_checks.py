"""What `tape check` proves about a strategy, on given bars (pure: seeded perturbations, no I/O).

Four checks, each naming the first offending bar when it fails:

- no look-ahead: the bars after several cut points are perturbed (prices, volumes) or dropped; no side
  or indicator value before the cut may change;
- vectorised == incremental: the incremental form stepped bar by bar gives the vectorised sides and
  values (values to 1e-9 relative, as the built-ins' own test);
- deterministic, and quiet during warm-up: two evaluations are identical, and no side is given before
  bar ``warmup() - 1``;
- output contract: one int8 side per bar in BUY/SELL/HOLD, values of the same length and finite where
  defined (NaN means "not defined yet").

The user's code may raise inside any check; the exception propagates (the caller names their file).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from tape.events.bars import BarSeries
from tape.events.errors import StrategyContractError
from tape.events.strategies import Strategy
from tape.events.strategies.base import SignalSeries, as_live_output

CHECKS = (
    "no look-ahead",
    "vectorised == incremental",
    "deterministic, no signal in warm-up",
    "output contract",
)
REL_TOL = 1e-9
SEED = 20_261_207


class CheckResult(NamedTuple):
    """One check's verdict; ``detail`` names the first offending bar on failure."""

    name: str
    passed: bool
    detail: str


class Finding(NamedTuple):
    """The first bad bar a check found on one symbol."""

    bar: int
    detail: str


Make = Callable[[], Strategy]  # a fresh strategy instance with the checked parameters


OnError = Callable[[Exception], "str | None"]  # the user's error as a message, or None to re-raise


def check_all(
    make: Make,
    series: Sequence[BarSeries],
    *,
    cuts: int = 5,
    equality_bars: int | None = None,
    on_error: OnError | None = None,
    only: Sequence[str] = CHECKS,
) -> list[CheckResult]:
    """Run every check on every series; one result per check, the earliest offending bar first.

    ``equality_bars`` limits the bars the forms are compared on (the derived incremental form of a
    vectorised-only strategy costs O(bars seen) per bar); None compares them all. An exception raised
    by the strategy fails the check it happened in with ``on_error``'s message (re-raised without it).
    """
    steps: list[tuple[str, Callable[[BarSeries], Finding | None]]] = [
        (CHECKS[3], lambda b: output_contract(make, b)),
        (CHECKS[0], lambda b: look_ahead(make, b, cuts=cuts)),
        (CHECKS[1], lambda b: forms_differ(make, b, limit=equality_bars)),
        (CHECKS[2], lambda b: nondeterminism(make, b)),
    ]
    results = {}
    for name, step in steps:
        if name in only:
            results[name] = _first_over(series, step, name, on_error)
    equal = results.get(CHECKS[1])
    if equal is not None and equal.passed and equality_bars is not None:
        symbols = ", ".join(b.symbol for b in series)
        results[CHECKS[1]] = equal._replace(detail=f"the first {equality_bars} bars of {symbols}")
    return [results[name] for name in CHECKS if name in results]


def _first_over(
    series: Sequence[BarSeries],
    step: Callable[[BarSeries], Finding | None],
    name: str,
    on_error: OnError | None,
) -> CheckResult:
    for bars in series:
        try:
            found = step(bars)
        except StrategyContractError as exc:
            return CheckResult(name, False, f"{bars.symbol}: {exc}")
        except Exception as exc:
            message = on_error(exc) if on_error is not None else None
            if message is None:
                raise
            return CheckResult(name, False, f"{bars.symbol}: {message}")
        if found is not None:
            return CheckResult(
                name, False, f"{bars.symbol} bar {found.bar} ({_day(bars, found.bar)}): {found.detail}"
            )
    symbols = ", ".join(b.symbol for b in series)
    return CheckResult(name, True, f"{sum(len(b) for b in series)} bars of {symbols}")


def output_contract(make: Make, bars: BarSeries) -> Finding | None:
    """The first bar whose vectorised output breaks the contract (the incremental form's outputs are
    checked as the forms are compared)."""
    out = make().signals(bars)  # a written signals() is normalised: a bad shape or side raises
    for key, column in out.values.items():
        bad = np.flatnonzero(np.isinf(column))
        if bad.size:
            return Finding(int(bad[0]), f"signals() value {key!r} is {column[bad[0]]} (not finite)")
    return None


def look_ahead(make: Make, bars: BarSeries, *, cuts: int = 5) -> Finding | None:
    """The earliest bar whose side or value changes when only later bars are changed or dropped."""
    n = len(bars)
    warm = max(1, min(n - 2, make().warmup()))
    points = sorted({int(p) for p in np.linspace(warm + 1, n - 1, num=max(1, cuts))} - {0, n})
    base = make().signals(bars)
    rng = np.random.default_rng(SEED)
    worst = _earliest_over(make, bars, base, points, rng)
    # The coarse cuts find that it looks ahead; finer cuts before that bar find where it starts.
    step = max(1, (worst.bar - warm) // 32) if worst is not None else 0
    while worst is not None and step >= 1:
        lo = max(warm + 1, worst.bar + 1 - step * 32)
        finer = _earliest_over(make, bars, base, list(range(lo, worst.bar + 1, step)), rng)
        if finer is not None and finer.bar < worst.bar:
            worst = finer
        step = 0 if step == 1 else max(1, step // 8)
    return worst


def _earliest_over(
    make: Make, bars: BarSeries, base: SignalSeries, points: Sequence[int], rng: np.random.Generator
) -> Finding | None:
    worst: Finding | None = None
    for cut in points:
        for how, changed in _perturbed(bars, cut, rng):
            found = _first_difference(base, make().signals(changed), cut)
            if found is not None and (worst is None or found.bar < worst.bar):
                detail = f"{found.detail} when bars from {cut} on were {how}: it reads the future"
                worst = Finding(found.bar, detail)
    return worst


def forms_differ(make: Make, bars: BarSeries, *, limit: int | None = None) -> Finding | None:
    """The first bar where the incremental form's side or a value differs from the vectorised form."""
    if limit is not None and len(bars) > limit:
        bars = bars.take(0, limit)
    vector = make().signals(bars)
    live, who = make().live(), type(make()).__name__
    for i in range(len(bars)):
        side, values = as_live_output(live.on_bar(*_bar(bars, i)), who)
        if side != vector.side[i]:
            return Finding(i, f"incremental side {side} but vectorised side {int(vector.side[i])}")
        for key, column in vector.values.items():
            if key not in values:
                return Finding(i, f"incremental form gives no value {key!r}")
            if np.isinf(values[key]):
                return Finding(i, f"incremental value {key!r} is {values[key]} (not finite)")
            if not _close(float(values[key]), float(column[i])):
                return Finding(i, f"value {key!r}: incremental {values[key]!r}, vectorised {column[i]!r}")
    return None


def nondeterminism(make: Make, bars: BarSeries) -> Finding | None:
    """The first bar that differs between two evaluations, or that signals inside the warm-up."""
    first, second = make().signals(bars), make().signals(bars)
    found = _first_difference(first, second, len(bars), exact=True)
    if found is not None:
        return Finding(found.bar, f"two evaluations differ: {found.detail}")
    warmup = make().warmup()
    early = np.flatnonzero(first.side[: max(0, warmup - 1)])
    if early.size:
        return Finding(int(early[0]), f"a signal inside the warm-up (warmup() is {warmup})")
    return None


def _perturbed(bars: BarSeries, cut: int, rng: np.random.Generator) -> list[tuple[str, BarSeries]]:
    """The bars with everything from ``cut`` on changed three ways: prices, volumes, dropped."""
    n = len(bars)
    scale = np.ones(n)
    scale[cut:] = np.exp(np.cumsum(rng.normal(0.0, 0.05, n - cut)))
    volume = bars.volume.copy()
    volume[cut:] = bars.volume[cut:] * rng.uniform(0.1, 3.0, n - cut) + 1.0
    prices = _with(bars, *(col * scale for col in (bars.open, bars.high, bars.low, bars.close)), bars.volume)
    volumes = _with(bars, bars.open, bars.high, bars.low, bars.close, volume)
    return [("repriced", prices), ("given other volumes", volumes), ("dropped", bars.take(0, cut))]


def _with(
    bars: BarSeries, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray
) -> BarSeries:
    return BarSeries(
        bars.symbol, bars.timeframe, bars.ts, o, h, lo, c, v, bars.session, bars.source, bars.adjusted
    )


def _first_difference(a: SignalSeries, b: SignalSeries, upto: int, *, exact: bool = False) -> Finding | None:
    """The first bar before ``upto`` where sides or values of two outputs differ."""
    diff = np.flatnonzero(a.side[:upto] != b.side[:upto])
    found = (
        Finding(int(diff[0]), f"side {int(a.side[diff[0]])} became {int(b.side[diff[0]])}")
        if diff.size
        else None
    )
    for key, column in a.values.items():
        other = b.values.get(key)
        if other is None:
            return Finding(0, f"value {key!r} is missing")
        x, y = column[:upto], other[:upto]
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        if not exact:
            same |= np.abs(x - y) <= REL_TOL * np.maximum(1.0, np.abs(x))
        bad = np.flatnonzero(~same)
        if bad.size and (found is None or bad[0] < found.bar):
            found = Finding(int(bad[0]), f"value {key!r} {x[bad[0]]!r} became {y[bad[0]]!r}")
    return found


def _close(a: float, b: float) -> bool:
    if np.isnan(a) or np.isnan(b):
        return bool(np.isnan(a) and np.isnan(b))
    return abs(a - b) <= REL_TOL * max(1.0, abs(b))


def _bar(bars: BarSeries, i: int) -> tuple[float, float, float, float, float]:
    return (
        float(bars.open[i]),
        float(bars.high[i]),
        float(bars.low[i]),
        float(bars.close[i]),
        float(bars.volume[i]),
    )


def _day(bars: BarSeries, i: int) -> str:
    return str(np.datetime64(int(bars.ts[i]), "ns"))[:10] if 0 <= i < len(bars) else "?"
