"""The rebalance engine: when to rebalance, and which orders turn held quantities into target weights.

Pure functions over numpy rows. A rebalance is decided at a bar's close (on the first trading day of
each period, or when a weight drifted too far from its target) and its orders fill at each symbol's
next open, sells before buys so the cash exists.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import NamedTuple

import numpy as np

from tape.events.errors import StrategyContractError

_EPOCH = dt.date(1970, 1, 1)
WEIGHT_TOLERANCE = 1e-9  # float noise allowed on the sum of the weights


def period_of(session: int, every: str) -> int:
    """A number naming the period of an exchange day (days since 1970-01-01): days of the same week,
    month or quarter share it; ``daily`` gives each day its own (``bar`` is every row: the caller's)."""
    if every == "daily":
        return session
    if every == "weekly":  # 1970-01-01 was a Thursday: +3 makes weeks start on Monday
        return (session + 3) // 7
    day = _EPOCH + dt.timedelta(days=session)
    months = day.year * 12 + day.month - 1
    if every == "monthly":
        return months
    if every == "quarterly":
        return months // 3
    raise ValueError(f"unknown rebalance schedule {every!r}")


def check_weights(weights: np.ndarray, tradable: np.ndarray, symbols: tuple[str, ...], who: str) -> None:
    """Refuse weights the engine cannot trade: infinite, negative (no shorts on this version), on a
    symbol without a bar, or summing above 1. Names the first bad row and symbol."""
    bad_checks = (
        (np.isinf(weights), "is infinite"),
        (weights < 0, "is negative: short weights need direction support, not in this version"),
        (~tradable & np.isfinite(weights) & (weights != 0), "is on a symbol with no bar there"),
    )
    for mask, why in bad_checks:
        hits = np.argwhere(mask)
        if hits.shape[0]:
            t, j = hits[0]
            raise StrategyContractError(f"{who}: weight {weights[t, j]:g} of {symbols[j]} at row {t} {why}")
    total = np.nansum(weights, axis=1)
    over = np.flatnonzero(total > 1.0 + WEIGHT_TOLERANCE)
    if over.shape[0]:
        t = int(over[0])
        raise StrategyContractError(f"{who}: weights at row {t} sum to {total[t]:g}, above 1 (no leverage)")


class Limits(NamedTuple):
    """The rebalance settings of a portfolio strategy's parameters, as fractions."""

    max_weight: float  # per symbol
    cash_buffer: float  # of equity, kept uninvested
    min_trade: float  # dollars
    drift: float  # weight difference below which no order is made (and above which a drift rebalances)


def capped(targets: np.ndarray, limits: Limits) -> np.ndarray:
    """The targets with ``max_weight`` applied (NaN, "keep", stays NaN)."""
    return np.where(np.isnan(targets), np.nan, np.minimum(targets, limits.max_weight))


def target_quantities(
    targets: np.ndarray,
    held: np.ndarray,
    price: np.ndarray,
    equity: float,
    increments: list[float],
    limits: Limits,
) -> np.ndarray:
    """Quantities that hold ``targets`` of the investable equity at ``price``, rounded down to each
    symbol's increment (whole shares for stocks); NaN targets and missing prices keep what is held."""
    investable = equity * (1.0 - limits.cash_buffer)
    out = held.copy()
    for j, weight in enumerate(targets.tolist()):
        close = float(price[j])
        if math.isnan(weight) or not math.isfinite(close):
            continue
        step = increments[j]
        units = math.floor(weight * investable / close / step)
        out[j] = units if step == 1.0 else round(units * step, 12)
    return out


def held_weights(held: np.ndarray, price: np.ndarray, equity: float) -> np.ndarray:
    """What share of ``equity`` each holding is worth at ``price``."""
    value = np.where(held != 0, held * np.nan_to_num(price), 0.0)
    return value / equity if equity > 0 else np.zeros_like(value)


def order_quantities(
    wanted: np.ndarray,
    held: np.ndarray,
    price: np.ndarray,
    targets: np.ndarray,
    current: np.ndarray,
    limits: Limits,
) -> np.ndarray:
    """Signed order quantities (sell < 0) from held to wanted, without the orders too small to make:
    worth less than ``min_trade``, or moving a weight by less than ``drift`` (a full exit or a new
    holding always goes)."""
    delta = wanted - held
    value = np.abs(delta) * np.nan_to_num(price)
    moved = np.abs(np.nan_to_num(targets, nan=0.0) - current)
    small = (value < limits.min_trade) | ((moved < limits.drift) & (wanted != 0) & (held != 0))
    return np.where(small | np.isnan(targets), 0.0, delta)


def drifted(targets: np.ndarray, current: np.ndarray, drift: float) -> bool:
    """Whether a held or targeted weight is further than ``drift`` from its target (0: never)."""
    if drift <= 0:
        return False
    known = ~np.isnan(targets)
    return bool(np.any(np.abs(targets[known] - current[known]) > drift))
