"""Inverse volatility: every tradable symbol, weighted in proportion to 1 / its volatility."""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np

from tape.events.panel import Panel
from tape.events.strategies.portfolio_base import PortfolioStrategy, RebalanceParams, Weights


class InverseVolParams(RebalanceParams, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The window volatility is measured over."""

    window: Annotated[int, msgspec.Meta(ge=2, le=10_000, description="returns in the volatility (bars)")] = 63


def volatility(close: np.ndarray, window: int) -> np.ndarray:
    """Standard deviation (ddof 1) of each column's last ``window`` simple returns; NaN until there
    are that many (or where a close is missing in them)."""
    rows, width = close.shape
    out = np.full(close.shape, np.nan)
    if rows <= window:
        return out
    returns = close[1:] / close[:-1] - 1.0
    for j in range(width):
        # Contiguous windows: each std is the same reduction as over a lone 1-D window.
        windows = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(returns[:, j], window))
        out[window:, j] = windows.std(axis=1, ddof=1)
    return out


class InverseVol(PortfolioStrategy):
    """Risk parity, naively: weights proportional to 1 / volatility over ``window`` bars."""

    name = "inverse_vol"
    summary = "every symbol, weights proportional to 1 / volatility of `window` bars of returns"
    Params = InverseVolParams

    def warmup(self) -> int:
        return self.params.window

    def weights(self, panel: Panel) -> Weights:
        vol = volatility(panel.close, self.params.window)
        valid = panel.tradable & np.isfinite(vol) & (vol > 0)
        inverse = np.where(valid, 1.0 / np.where(valid, vol, 1.0), 0.0)
        total = inverse.sum(axis=1, keepdims=True)
        weights = np.divide(inverse, total, out=np.zeros_like(inverse), where=total > 0)
        weights[: self.params.window] = np.nan  # no opinion before a full window
        return Weights(weights, {"volatility": np.where(valid, vol, np.nan)})

    def describe_weights(self, values: dict[str, float]) -> str:
        return f"volatility {values.get('volatility', float('nan')):.4f} over {self.params.window} bars"
