"""tape: an actor-based, event-sourced trading engine.

The repository keeps the design card's folders at its root (``events/``, ``store/``, ``actors/``,
``cli/``); they install inside this package as ``tape.events``, ``tape.store``, ``tape.actors`` and
``tape.cli``, so ``tape`` is the only top-level name the distribution claims.
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("tape")
except _metadata.PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

_STRATEGY_NAMES = ("Strategy", "BUY", "SELL", "HOLD", "SignalSeries")


def __getattr__(name: str) -> object:
    """The strategy API, imported on first use so ``import tape`` stays light."""
    if name in _STRATEGY_NAMES:
        from tape.events.strategies import base

        return getattr(base, name)
    raise AttributeError(f"module 'tape' has no attribute {name!r}")
