"""What `tape check` proves about a portfolio strategy, on a panel (pure: seeded perturbations).

- no look-ahead, across symbols: one symbol's bars after a cut are repriced, given other volumes, or
  dropped; no weight or recorded value of ANY symbol before the cut may change. A failure names the
  first bad row, the symbol whose weight changed and the symbol whose future it read;
- vectorised == incremental: the rows stepped one by one give the vectorised weights and values;
- deterministic, no weight in warm-up: two evaluations are identical, and rows before ``warmup()``
  hold no weight;
- output contract: weights shaped bars x symbols, finite or NaN, long only, zero where a symbol has
  no bar, summing to at most 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from tape.events.errors import StrategyContractError
from tape.events.panel import Panel
from tape.events.rebalance import check_weights
from tape.events.strategies.portfolio_base import (
    PortfolioStrategy,
    Weights,
    as_weight_row,
    incremental,
    weights_of,
)
from tape.events.strategy_checks import CHECKS, REL_TOL, SEED, CheckResult

MakePortfolio = Callable[[], PortfolioStrategy]


class Finding(NamedTuple):
    """The first bad row a check found, and what was wrong there."""

    row: int
    detail: str


def check_portfolio(
    make: MakePortfolio, panel: Panel, *, cuts: int = 3, equality_rows: int | None = None
) -> list[CheckResult]:
    """Every check on ``panel``; one result per check (the same names as a signal strategy's).
    ``equality_rows`` limits the rows the forms are compared on (None: all)."""
    steps: list[tuple[str, Callable[[], Finding | None]]] = [
        (CHECKS[0], lambda: cross_symbol_look_ahead(make, panel, cuts=cuts)),
        (CHECKS[1], lambda: forms_differ(make, panel, limit=equality_rows)),
        (CHECKS[2], lambda: nondeterminism(make, panel)),
        (CHECKS[3], lambda: output_contract(make, panel)),
    ]
    results = []
    for name, step in steps:
        try:
            found = step()
        except StrategyContractError as exc:
            results.append(CheckResult(name, False, str(exc)))
            continue
        if found is None:
            results.append(CheckResult(name, True, f"{len(panel)} rows of {panel.width} symbols"))
        else:
            results.append(
                CheckResult(name, False, f"row {found.row} ({_day(panel, found.row)}): {found.detail}")
            )
    return results


def output_contract(make: MakePortfolio, panel: Panel) -> Finding | None:
    """Raises StrategyContractError (naming row and symbol) for weights the engine cannot trade."""
    strategy = make()
    out = weights_of(strategy, panel)
    check_weights(out.weights, panel.tradable, panel.symbols, type(strategy).__name__)
    return None


def cross_symbol_look_ahead(make: MakePortfolio, panel: Panel, *, cuts: int = 3) -> Finding | None:
    """The earliest row whose weights or values change when one symbol's future is perturbed."""
    base = weights_of(make(), panel)
    rng = np.random.default_rng(SEED)
    rows = len(panel)
    earliest: Finding | None = None
    for cut in np.linspace(rows // 3, rows - 2, cuts).astype(int).tolist():
        for k in range(panel.width):
            for how, changed in _perturbed(panel, k, cut, rng):
                found = _first_difference(base, weights_of(make(), changed), cut, panel)
                if found is not None and (earliest is None or found.row < earliest.row):
                    detail = (
                        f"{found.detail} when {panel.symbols[k]}'s bars from {_day(panel, cut)} on were {how}"
                    )
                    earliest = Finding(found.row, detail)
    return earliest


def forms_differ(make: MakePortfolio, panel: Panel, *, limit: int | None = None) -> Finding | None:
    """The first row where the incremental form's weights or values differ from the vectorised."""
    rows = len(panel) if limit is None else min(len(panel), limit)
    shown = panel.upto(rows - 1)
    strategy = make()
    vectorised = weights_of(strategy, shown)
    stepper = incremental(strategy, panel.symbols)
    who = type(strategy).__name__
    stepped = [as_weight_row(stepper.on_bars(shown.row(t)), panel.width, who) for t in range(rows)]
    weights = np.vstack([row for row, _ in stepped])
    values = {k: np.vstack([v[k] for _, v in stepped]) for k in (stepped[0][1] if stepped else {})}
    found = _first_difference(vectorised, Weights(weights, values), rows, panel, exact=False)
    return None if found is None else Finding(found.row, f"incremental differs: {found.detail}")


def nondeterminism(make: MakePortfolio, panel: Panel) -> Finding | None:
    """The first row that differs between two evaluations, or holds a weight inside the warm-up."""
    first, second = weights_of(make(), panel), weights_of(make(), panel)
    found = _first_difference(first, second, len(panel), panel, exact=True)
    if found is not None:
        return Finding(found.row, f"two evaluations differ: {found.detail}")
    warmup = make().warmup()
    early = np.argwhere(np.nan_to_num(first.weights[:warmup]) != 0)
    if early.shape[0]:
        t, j = early[0]
        return Finding(int(t), f"a weight for {panel.symbols[j]} inside the warm-up (warmup() is {warmup})")
    return None


def _perturbed(panel: Panel, k: int, cut: int, rng: np.random.Generator) -> list[tuple[str, Panel]]:
    """The panel with symbol ``k``'s bars from ``cut`` on changed four ways."""
    rows = len(panel)
    noise = np.exp(np.cumsum(rng.normal(0.0, 0.05, rows - cut)))
    # Marked down and marked up: whichever way the bar at the cut went, one of them reverses it.
    down, up = (
        {
            n: _column(getattr(panel, n), k, cut, getattr(panel, n)[cut:, k] * noise * f)
            for n in ("open", "high", "low", "close")
        }
        for f in (0.8, 1.25)
    )
    volume = _column(panel.volume, k, cut, panel.volume[cut:, k] * rng.uniform(0.1, 3.0, rows - cut) + 1.0)
    dropped = {
        n: _column(getattr(panel, n), k, cut, np.nan) for n in ("open", "high", "low", "close", "volume")
    }
    gone = panel.tradable.copy()
    gone[cut:, k] = False
    return [
        ("repriced lower", dataclasses.replace(panel, **down)),
        ("repriced higher", dataclasses.replace(panel, **up)),
        ("given other volumes", dataclasses.replace(panel, volume=volume)),
        ("dropped", dataclasses.replace(panel, **dropped, tradable=gone)),
    ]


def _column(array: np.ndarray, k: int, cut: int, value: np.ndarray | float) -> np.ndarray:
    out = array.copy()
    out[cut:, k] = value
    return out


def _first_difference(
    a: Weights, b: Weights, upto: int, panel: Panel, *, exact: bool = True
) -> Finding | None:
    """The first row before ``upto`` where weights or values of two outputs differ, naming the symbol."""
    pairs = [("weight", a.weights, b.weights)]
    for key, column in a.values.items():
        other = b.values.get(key)
        if other is None:
            return Finding(0, f"value {key!r} is missing")
        pairs.append((f"value {key!r}", column, other))
    found: Finding | None = None
    for what, x, y in pairs:
        x, y = x[:upto], y[:upto]
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        if not exact:
            same |= np.abs(x - y) <= REL_TOL * np.maximum(1.0, np.abs(x))
        bad = np.argwhere(~same)
        if bad.shape[0] and (found is None or bad[0][0] < found.row):
            t, j = bad[0]
            found = Finding(
                int(t), f"{what} of {panel.symbols[j]} {float(x[t, j])!r} became {float(y[t, j])!r}"
            )
    return found


def _day(panel: Panel, t: int) -> str:
    return str(np.datetime64(int(panel.ts[t]), "ns"))[:10] if 0 <= t < len(panel) else "?"
