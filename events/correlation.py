"""Return correlation between symbols over a trailing window, aligned by timestamp.

Each symbol keeps its last ``window`` simple returns keyed by bar time; a correlation uses only the
timestamps both symbols have, so a symbol that has not reported the current bar yet is compared on the
bars both have seen. Both drivers feed it bar by bar in the same order, so they agree exactly.
"""

from __future__ import annotations

import math
from collections import deque


class ReturnWindows:
    """Trailing returns of every symbol, for the correlation rule."""

    __slots__ = ("_last_close", "_returns", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self._returns: dict[str, deque[tuple[int, float]]] = {}
        self._last_close: dict[str, float] = {}

    def update(self, symbol: str, ts: int, close: float) -> None:
        """Record the bar's close (and its return over the previous close)."""
        previous = self._last_close.get(symbol)
        self._last_close[symbol] = close
        if previous is None or previous <= 0:
            return
        series = self._returns.get(symbol)
        if series is None:
            series = self._returns[symbol] = deque(maxlen=self.window)
        series.append((ts, close / previous - 1.0))

    def correlation(self, a: str, b: str) -> float:
        """Pearson correlation of the two symbols' returns on their common timestamps (NaN if fewer
        than half a window of them, or no variation)."""
        left, right = self._returns.get(a), self._returns.get(b)
        if not left or not right:
            return math.nan
        other = dict(right)
        pairs = [(r, other[ts]) for ts, r in left if ts in other]
        n = len(pairs)
        if n < max(3, self.window // 2):
            return math.nan
        mean_x = math.fsum(x for x, _ in pairs) / n
        mean_y = math.fsum(y for _, y in pairs) / n
        cov = math.fsum((x - mean_x) * (y - mean_y) for x, y in pairs)
        var_x = math.fsum((x - mean_x) ** 2 for x, _ in pairs)
        var_y = math.fsum((y - mean_y) ** 2 for _, y in pairs)
        if var_x <= 0 or var_y <= 0:
            return math.nan
        return cov / math.sqrt(var_x * var_y)
