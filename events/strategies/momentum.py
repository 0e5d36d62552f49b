"""Momentum: rank the universe by its return over ``lookback`` bars, skipping the last ``skip``; hold
the best ``top`` in equal weights."""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np

from tape.events.panel import Panel
from tape.events.strategies.portfolio_base import PortfolioStrategy, RebalanceParams, Weights


class MomentumParams(RebalanceParams, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Look-back, skip and how many to hold."""

    lookback: Annotated[int, msgspec.Meta(ge=2, le=10_000, description="return measured over (bars)")] = 252
    skip: Annotated[int, msgspec.Meta(ge=0, le=10_000, description="most recent bars left out")] = 21
    top: Annotated[int, msgspec.Meta(ge=1, le=1_000, description="symbols held, equal weights")] = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.skip >= self.lookback:
            raise ValueError(f"skip ({self.skip}) must be less than lookback ({self.lookback})")


def ranked(score: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Rank of each score along the last axis, 1 = highest; ties go to the earlier symbol; NaN
    where not valid."""
    keyed = np.where(valid, -np.where(valid, score, 0.0), np.inf)
    order = np.argsort(keyed, axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(1, score.shape[-1] + 1), axis=-1)
    return np.where(valid, rank.astype(np.float64), np.nan)


def top_weights(score: np.ndarray, valid: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal weights ``1/top`` on the ``top`` best-ranked valid symbols, 0 elsewhere; and the ranks."""
    rank = ranked(score, valid)
    return np.where(valid & (rank <= top), 1.0 / top, 0.0), rank


class Momentum(PortfolioStrategy):
    """Cross-sectional momentum: hold the top symbols by past return, equal-weighted."""

    name = "momentum"
    summary = "hold the top `top` symbols by return over `lookback` bars skipping `skip`, equal weights"
    Params = MomentumParams

    def warmup(self) -> int:
        return self.params.lookback

    def weights(self, panel: Panel) -> Weights:
        p = self.params
        close, rows = panel.close, len(panel)
        score = np.full(close.shape, np.nan)
        if rows > p.lookback:
            score[p.lookback :] = (
                close[p.lookback - p.skip : rows - p.skip] / close[: rows - p.lookback] - 1.0
            )
        valid = panel.tradable & np.isfinite(score)
        weights, rank = top_weights(score, valid, p.top)
        weights[: p.lookback] = np.nan  # no opinion before a full look-back
        return Weights(weights, {"score": np.where(valid, score, np.nan), "rank": rank})

    def describe_weights(self, values: dict[str, float]) -> str:
        p = self.params
        score, rank = values.get("score", float("nan")), values.get("rank", float("nan"))
        return f"return {score:+.2%} over {p.lookback} bars (skip {p.skip}), rank {rank:.0f}"
