"""The configs of a backtest's arguments, built and validated once for the CLI and the Python API."""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tape.events.costs import CostModel
from tape.events.errors import ConfigError
from tape.events.risk import RiskConfig

if TYPE_CHECKING:
    from tape.events.backtest import BacktestConfig


def _float(name: str, value: Any) -> float:
    # The config is hashed into the run id: 2 and 2.0 must record alike, as the command line's float.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"--{name.replace('_', '-')} must be a number, got {value!r}")
    return float(value)


def parse_day(text: str | dt.date | None, option: str) -> str:
    """A YYYY-MM-DD option, normalised; "" when not given."""
    if not text:
        return ""
    if isinstance(text, dt.date):  # datetime.date, datetime and pandas.Timestamp: their calendar day
        return text.isoformat()[:10]
    if not isinstance(text, str):
        raise ConfigError(f"{option} expects a date like 2010-01-31, got {text!r}")
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ConfigError(f"{option} expects a date like 2010-01-31, got {text!r}") from None


def build_config(
    symbols: list[str],
    strategy: str,
    param: list[str] | None,
    start: str | None,
    end: str | None,
    cash: float,
    *,
    timeframe: str = "1Day",
    adjust: bool = True,
    dataset: str = "",
    cost: CostModel | None = None,
    risk: RiskConfig | None = None,
    no_check: bool | None = None,
) -> BacktestConfig:
    """The BacktestConfig of a command's options (validated: bad values raise ConfigError).

    ``no_check`` is given by the commands that run the strategy: a strategy that is not built in is
    then checked first (look-ahead and equality of its forms), unless ``no_check`` is true.
    """
    # Imported here: the CLI imports this module to declare its options, and numpy is not needed for that.
    from tape.events.backtest import BacktestConfig
    from tape.events.strategies import parse_param_args

    strategy, params = resolve_strategy(strategy, parse_param_args(param or []))
    config = BacktestConfig(
        symbols=list(dict.fromkeys(s.strip().upper() for s in symbols if s.strip())),
        strategy=strategy,
        params=params,
        start=parse_day(start, "--start"),
        end=parse_day(end, "--end"),
        timeframe=timeframe,
        adjust=adjust,
        dataset=dataset,
        cash=_float("cash", cash),
        cost=cost or CostModel(),
        risk=risk or RiskConfig(),
    )
    if config.start and config.end and config.start > config.end:
        raise ConfigError(f"--start {config.start} is after --end {config.end}")
    if no_check is not None:
        from tape.store.strategy_check import check_before_run

        check_before_run(config.strategy, config.params, skip=no_check)
    return config


def resolve_strategy(strategy: str, params: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The canonical spec of a strategy (a name, file.py[:Class], module:Class or entry point),
    loading it; an ensemble's members are resolved the same way."""
    from tape.store.strategy_loader import resolve

    spec = resolve(strategy)
    if spec == "ensemble" and params.get("members"):
        members = [m.strip() for m in params["members"].split(",") if m.strip()]
        params = {**params, "members": ",".join(resolve(m) for m in members)}
    return spec, params


def param_args(params: Any) -> list[str] | None:
    """The ``params`` keyword as the CLI's ``--param NAME=VALUE`` list (a dict or that list already),
    so a parameter given either way is recorded, and hashed into the run id, identically."""
    if params is None:
        return None
    if isinstance(params, Mapping):
        return [f"{name}={_text(value)}" for name, value in params.items()]
    if isinstance(params, list | tuple) and all(isinstance(p, str) for p in params):
        return list(params)
    raise ConfigError(f"params must be a dict of NAME: VALUE, got {type(params).__name__}")


def grid_args(grid: Any) -> list[str]:
    """The ``grid`` keyword as the CLI's ``--grid NAME=V1,V2`` list (from a dict of lists, or that list)."""
    if grid is None:
        return []
    if isinstance(grid, Mapping):
        out = []
        for name, values in grid.items():
            items = values if isinstance(values, list | tuple | range) else [values]
            out.append(f"{name}={','.join(_text(v) for v in items)}")
        return out
    if isinstance(grid, list | tuple) and all(isinstance(g, str) for g in grid):
        return list(grid)
    raise ConfigError(f"grid must be a dict of NAME: [V1, V2, ...], got {type(grid).__name__}")


def _text(value: Any) -> str:
    # As typed on a command line: msgspec reads "true"/"false", not Python's "True".
    return str(value).lower() if isinstance(value, bool) else str(value)


def strategy_arg(strategy: Any, params: list[str] | None) -> tuple[str, list[str] | None]:
    """A strategy spec as the CLI takes it, and the parameters to run it with.

    A string passes through unchanged (the CLI's ``--strategy``). A Strategy subclass or instance
    defined at the top level of a file runs as ``path/to/file.py:Class``: loaded, hashed and shipped to
    Ray workers like any user's file. One defined elsewhere (a notebook cell, inside a function) is
    registered in this process under its ``name``, so it runs here but not on Ray workers. An instance
    brings its parameters, unless ``params`` gives them.
    """
    from tape.events.strategies import REGISTRY, Strategy

    if isinstance(strategy, str):
        return strategy, params
    cls = strategy if isinstance(strategy, type) else type(strategy)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(
            f"strategy must be a strategy name or a tape.Strategy subclass or instance, "
            f"got {type(strategy).__name__}"
        )
    if not isinstance(strategy, type):
        if params is not None:
            raise ConfigError("strategy: give parameters on the instance or as params=, not both")
        import msgspec

        params = param_args(msgspec.to_builtins(strategy.params))
    source_file = _defining_file(cls)
    if source_file is not None:
        return f"{source_file}:{cls.__name__}", params
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"strategy: {cls.__name__} needs a class attribute name = '...'")
    if REGISTRY.get(name, cls) is not cls:
        raise ConfigError(f"strategy: {cls.__name__}.name {name!r} is already another strategy's name")
    REGISTRY[name] = cls
    return name, params


def _defining_file(cls: type) -> str | None:
    """The .py file that defines ``cls`` at its top level, when there is one to load it from again."""
    import inspect
    import sys

    module = sys.modules.get(cls.__module__)
    if module is None or "<locals>" in cls.__qualname__ or getattr(module, cls.__qualname__, None) is not cls:
        return None
    try:
        path = inspect.getsourcefile(cls)
    except (TypeError, OSError):
        return None
    if path is None or not path.endswith(".py") or not Path(path).is_file():
        return None
    return str(Path(path).resolve())
