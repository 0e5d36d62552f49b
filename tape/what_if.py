"""``tape.whatif``: re-run a logged run with other options or another strategy, as a derived run.

``tape whatif`` calls :func:`whatif` itself, so the command and the function cannot disagree. The keys
of ``set`` are the run options' names (:data:`tape.run_options.RUN_OPTIONS`), as ``tape backtest``
takes them without the dashes: ``{"stop_loss": 3}`` is ``--set stop_loss=3``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from tape.arguments import param_args, resolve_strategy, strategy_arg
from tape.boundary import public
from tape.data_input import data_store
from tape.events.errors import ConfigError
from tape.run_options import RunOption, chosen_options

if TYPE_CHECKING:
    from tape.events.backtest import BacktestConfig
    from tape.store.whatif import WhatIfOutcome

_SETTABLE = {o.name: o for o in chosen_options(live=False) if o.field != "timeframe"}


def settable_keys() -> list[str]:
    """The names ``--set`` takes: every run option but the bar size (the recorded bars are fixed)."""
    return sorted(_SETTABLE)


def parse_sets(items: list[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["stop_loss=3", ...]`` (or a dict) as {option name: typed value}; unknown keys and bad values
    raise ConfigError naming the valid keys."""
    pairs: list[tuple[str, Any]] = []
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        for item in items or []:
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
            pairs.append((key.strip(), value.strip()))
    out = {}
    for key, value in pairs:
        option = _SETTABLE.get(key.replace("-", "_"))
        if option is None:
            raise ConfigError(f"--set: unknown key {key!r}; valid keys: {', '.join(settable_keys())}")
        out[option.name] = _typed(option, value)
    return out


def _typed(option: RunOption, value: Any) -> Any:
    if not isinstance(value, str):
        return float(value) if option.kind is float and not isinstance(value, bool) else value
    try:
        return option.kind(value)
    except ValueError:
        raise ConfigError(f"--set {option.name}: expected a {option.kind.__name__}, got {value!r}") from None


def changed_config(
    config: BacktestConfig, sets: dict[str, Any], strategy: str | None, params: list[str] | None
) -> tuple[BacktestConfig, dict[str, Any]]:
    """``config`` with the changes applied, and the changes as the derived run records them."""
    from tape.events.strategies import make_strategy, parse_param_args

    cost, risk = msgspec.to_builtins(config.cost), msgspec.to_builtins(config.risk)
    given = parse_param_args(params or [])
    for name, value in sets.items():
        part, field = _SETTABLE[name].field.split(".")
        if part == "portfolio":  # a portfolio strategy's own parameter, as the commands pass it
            given[field] = str(value)
        else:
            (cost if part == "cost" else risk)[field] = value
    changes: dict[str, Any] = dict(sets)
    name, merged = config.strategy, {**config.params, **given}
    if strategy is not None:
        name, merged = resolve_strategy(strategy, given)
        changes["strategy"] = name
    changes.update({f"param.{k}": v for k, v in given.items()})
    try:
        new = msgspec.structs.replace(
            config,
            strategy=name,
            params=merged,
            cost=msgspec.convert(cost, type(config.cost)),
            risk=msgspec.convert(risk, type(config.risk)),
        )
    except msgspec.ValidationError as exc:
        raise ConfigError(f"--set: {exc}") from None
    make_strategy(new.strategy, new.params)  # bad strategy or parameters: fail before the log is touched
    return new, changes


@public
def whatif(
    run: Any,
    *,
    set: Mapping[str, Any] | list[str] | None = None,
    strategy: Any = None,
    params: dict[str, Any] | list[str] | None = None,
    log: str | os.PathLike[str] | None = None,
    data_path: str | os.PathLike[str] | None = None,
) -> WhatIfOutcome:
    """Re-run ``run`` (a run id, unique prefix, or :class:`tape.Result`) on its recorded inputs with
    ``set`` (run options by name: ``{"stop_loss": 3}``), another ``strategy`` and/or ``params``; the
    derived run is logged, linked to ``run``. Returns the outcome: ``original`` and ``derived`` reports,
    ``link`` (origin and changes), ``diff`` (trades added/removed/altered, metric deltas, the first
    decision that diverged). ``log``/``data_path``: as for :func:`tape.backtest`."""
    from tape.api import log_file
    from tape.result import Result
    from tape.store.whatif import whatif as run_whatif

    if isinstance(run, Result):
        log = run.log if log is None else log
        run = run.run_id
    if not isinstance(run, str) or not run:
        raise ConfigError(f"run must be a run id or a tape.Result, got {type(run).__name__}")
    sets = parse_sets(set)
    spec, given = None, param_args(params)
    if strategy is not None:
        spec, given = strategy_arg(strategy, given)
    return run_whatif(
        log_file(log),
        run,
        lambda config: changed_config(config, sets, spec, given),
        data_path=data_store(data_path),
    )


OVERFIT_WARNING = (
    "every variant ran on the same recorded bars: picking the best is fitting to their noise, all "
    "the more so on few trades; test the choice on other periods (tape walkforward) before trading it"
)


def parse_grid(items: list[str] | Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """``["stop_loss=2,3,5,8", ...]`` (or a dict of lists) as every combination of option values, in
    order; keys and values are checked as ``--set`` checks them."""
    import itertools

    from tape.arguments import grid_args

    axes: list[list[tuple[str, Any]]] = []
    for item in grid_args(items):
        key, eq, values = item.partition("=")
        if not eq or not values.strip():
            raise ConfigError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        axes.append([next(iter(parse_sets([f"{key}={v}"]).items())) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)]


@public
def whatif_grid(
    run: Any,
    grid: Mapping[str, Any] | list[str],
    *,
    objective: str = "sharpe",
    strategy: Any = None,
    params: dict[str, Any] | list[str] | None = None,
    log: str | os.PathLike[str] | None = None,
    data_path: str | os.PathLike[str] | None = None,
    address: str | None = None,
) -> list[WhatIfOutcome]:
    """Every combination of ``grid`` (``{"stop_loss": [2, 3, 5, 8]}``) as a what-if of ``run``, run as
    Ray tasks (``address``: a cluster; local Ray otherwise) and logged as derived runs; the outcomes
    ranked by ``objective`` (as ``tape optimize --objective``), best first. Read
    :data:`OVERFIT_WARNING` before trusting the winner."""
    from tape.actors.whatif_grid import run_grid
    from tape.api import log_file
    from tape.events.sweep import objective_key
    from tape.result import Result

    key, higher = objective_key(objective)
    if isinstance(run, Result):
        log = run.log if log is None else log
        run = run.run_id
    combos = parse_grid(grid)
    if not combos:
        raise ConfigError("--grid: give at least one KEY=V1,V2,...")
    spec, given = None, param_args(params)
    if strategy is not None:
        spec, given = strategy_arg(strategy, given)
    changes = [lambda c, sets=sets: changed_config(c, sets, spec, given) for sets in combos]
    outcomes = run_grid(log_file(log), run, changes, data_path=data_store(data_path), address=address)

    def score(o: WhatIfOutcome) -> float:
        value = o.derived.metrics.get(key)
        return float("-inf") if value is None else (float(value) if higher else -float(value))

    return sorted(outcomes, key=score, reverse=True)
