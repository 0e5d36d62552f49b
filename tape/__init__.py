"""tape: an actor-based, event-sourced trading engine, from Python or the ``tape`` command.

    import tape
    r = tape.backtest("AAPL", "sma_cross", params={"short": 10, "long": 50})
    r.summary["return_pct"], r.trades, r.equity, r.plot()

Every call is logged like its command (``log=`` a path, or this session's temporary log) and returns
pandas objects: :func:`backtest`, :func:`optimize`, :func:`walkforward`, :func:`validate`,
:func:`montecarlo`, :func:`replay`, :func:`runs`; bad arguments raise :class:`ConfigError` (a
ValueError). Write strategies by subclassing :class:`Strategy` (sides :data:`BUY`, :data:`SELL`,
:data:`HOLD` in a :class:`SignalSeries`), or
:class:`PortfolioStrategy` for target weights over a universe. ``help(tape.backtest)`` says the rest.

The public names load on first use, so ``import tape`` stays light (no Ray, no matplotlib). The
design card's folders install inside this package as ``tape.events``, ``tape.store``,
``tape.actors`` and ``tape.cli``: internals, not API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> the module that defines it (imported when the name is first used).
_WHERE = {
    "backtest": "tape.api",
    "replay": "tape.api",
    "runs": "tape.api",
    "check": "tape.api",
    "optimize": "tape.jobs",
    "walkforward": "tape.jobs",
    "whatif": "tape.what_if",
    "whatif_grid": "tape.what_if",
    "validate": "tape.jobs",
    "montecarlo": "tape.jobs",
    "Result": "tape.result",
    "JobResult": "tape.result",
    "ConfigError": "tape.events.errors",
    "Strategy": "tape.events.strategies.base",
    "BUY": "tape.events.strategies.base",
    "SELL": "tape.events.strategies.base",
    "HOLD": "tape.events.strategies.base",
    "FLAT": "tape.events.strategies.base",
    "SignalSeries": "tape.events.strategies.base",
    "PortfolioStrategy": "tape.events.strategies.portfolio_base",
    "Weights": "tape.events.strategies.portfolio_base",
}

__all__ = [
    "BUY",
    "FLAT",
    "HOLD",
    "SELL",
    "ConfigError",
    "JobResult",
    "PortfolioStrategy",
    "Result",
    "SignalSeries",
    "Strategy",
    "Weights",
    "backtest",
    "check",
    "montecarlo",
    "optimize",
    "replay",
    "runs",
    "validate",
    "walkforward",
    "whatif",
    "whatif_grid",
]
assert sorted(__all__) == sorted(_WHERE)

if TYPE_CHECKING:
    from tape.api import backtest, check, replay, runs
    from tape.events.errors import ConfigError
    from tape.events.strategies.base import BUY, FLAT, HOLD, SELL, SignalSeries, Strategy
    from tape.events.strategies.portfolio_base import PortfolioStrategy, Weights
    from tape.jobs import montecarlo, optimize, validate, walkforward
    from tape.result import JobResult, Result
    from tape.what_if import whatif, whatif_grid


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("tape")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read from the installed metadata on demand: a slow import otherwise
        globals()[name] = value = _version()
        return value
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tape' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})
