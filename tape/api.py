"""``tape.backtest``, ``tape.replay``, ``tape.runs``: backtests from Python, logged like the CLI's.

``tape backtest`` calls :func:`backtest` itself (through ``backtest.__wrapped__``, which keeps the CLI's
``--option`` wording in messages), so the command and the function cannot disagree.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tape.arguments import build_config, param_args, strategy_arg
from tape.boundary import public
from tape.data_input import data_store, resolve_data
from tape.result import Result, as_json_value
from tape.run_options import RunOptions, run_keywords

if TYPE_CHECKING:
    import pandas as pd

Progress = Callable[[int, int], None]

_session_dir: list[Path] = []


def session_log() -> Path:
    """This Python process's temporary log: where ``log=None`` writes, removed when Python exits."""
    if not _session_dir:
        folder = Path(tempfile.mkdtemp(prefix="tape-session-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _session_dir.append(folder)
    return _session_dir[0] / "tape.db"


def log_file(log: str | os.PathLike[str] | None) -> Path:
    """The log a call reads or appends to: ``log`` as given (like ``--log``), else the session's."""
    return session_log() if log is None else Path(log)


@public
@run_keywords
def backtest(
    data: Any = None,
    strategy: Any = "sma_cross",
    *,
    universe: str | None = None,
    params: dict[str, Any] | list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    cash: float = 100_000.0,
    options: RunOptions,
    dataset: str = "",
    adjust: bool = True,
    tz: str | None = None,
    no_check: bool = False,
    log: str | os.PathLike[str] | None = None,
    data_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Result:
    """Backtest a strategy and log every decision; returns a :class:`tape.Result`.

    ``data``: a symbol (``"AAPL"``) or a list of them (several share cash and limits), read from the
    market-data store and then the bundled sample, as ``tape backtest`` reads them; a bundled dataset
    name (``"sample"``, ``"sp500_20"``: all its symbols); a pandas DataFrame of OHLCV bars (columns
    open, high, low, close, volume, optionally adj_close; a DatetimeIndex, tz-aware, or naive with
    ``tz=``; it trades as ``df.attrs["symbol"]``, else ``"DATA"``); or a dict of DataFrames by symbol.

    ``universe`` instead of ``data``: a bundled dataset name or ``"stored"`` (every stored series of
    the timeframe), as ``--universe``.

    ``strategy``: a built-in name (see ``tape strategies``), or a ``tape.Strategy`` or
    ``tape.PortfolioStrategy`` subclass or instance. ``params``: ``{"short": 10, "long": 50}`` (or
    ``["short=10", "long=50"]``). A portfolio strategy (``momentum``, ``inverse_vol``) also takes
    ``rebalance``, ``drift``, ``max_weight``, ``cash_buffer`` and ``min_trade``.

    ``start``/``end``: ``"YYYY-MM-DD"`` days, both included. Every other keyword is the option of
    ``tape backtest`` with the same name and default (``slippage_bps`` is ``--slippage-bps``, ...):
    ``cash`` starting cash; costs ``slippage_bps``, ``commission`` (per order), ``fee_bps``; risk
    ``stop_loss``/``take_profit``/``risk_per_trade``/``max_daily_loss`` (%), ``max_position_size``,
    ``max_positions``, ``qty`` (fixed size), ``qty_increment``, ``sizing`` ("percent" or "atr"),
    ``atr_period``, ``atr_stop``, ``min_avg_volume``, ``max_volume_pct``, ``regimes``, ``trend_adx``,
    ``volatile_atr``, ``max_correlation``, ``correlation_window``, ``correlation_action``;
    ``timeframe`` of the bars (default: the only one stored, or a DataFrame's row spacing; a coarser one
    than stored is built from the stored bars); ``dataset`` a bundled dataset to read the symbols from;
    ``adjust=False`` for raw prices (``--no-adjust``).

    ``log``: the event log to append to, exactly like ``--log``; ``None`` appends to this session's
    temporary log (gone when Python exits). ``data_path``: the market-data store (``--data``; default
    $TAPE_DATA or ./tape-data.db). ``progress``: called with (bars done, bars total).

    An identical run already in the log is not run again: its result is read back from the log.
    Bad arguments raise ``tape.ConfigError`` (a ValueError) naming the argument, before the log is
    touched.

    >>> r = tape.backtest("AAPL", "sma_cross", params={"short": 10, "long": 50}, start="2010-01-01")
    >>> r.summary["total_trades"], r.trades.head(), r.plot()
    """
    from tape.store.backtests import backtest as run_logged

    data = universe_data(data, universe, options.timeframe, data_path)
    config, loader = run_config(
        data, strategy, params, start, end, cash, dataset, tz, no_check, options, data_path, adjust=adjust
    )
    log_path = log_file(log)
    outcome = run_logged(
        config, log_path=log_path, data_path=data_store(data_path), progress=progress, loader=loader
    )
    if not _KEEP_EVENTS.get():
        outcome = outcome._replace(events=())  # a notebook's Result reads them from the log when asked
    return Result(outcome.report, log=log_path, series=outcome.series, outcome=outcome)


_KEEP_EVENTS: ContextVar[bool] = ContextVar("tape_keep_events", default=False)


@contextmanager
def keeping_events() -> Iterator[None]:
    """Backtests run inside keep their run's events on ``Result.outcome`` (the command writes its
    HTML page from them instead of reading the log back; it lets them go once written)."""
    token = _KEEP_EVENTS.set(True)
    try:
        yield
    finally:
        _KEEP_EVENTS.reset(token)


def run_config(
    data: Any,
    strategy: Any,
    params: Any,
    start: str | None,
    end: str | None,
    cash: float,
    dataset: str,
    tz: str | None,
    no_check: bool,
    options: RunOptions,
    data_path: str | os.PathLike[str] | None,
    *,
    adjust: bool = True,
) -> tuple[Any, Any]:
    """The config a run is started with, from the API's (and so the commands') arguments, and the
    loader of DataFrame data (None for stored symbols): one builder for backtests and jobs."""
    name, given = strategy_arg(strategy, param_args(params))
    given = portfolio_args(name, given, options.portfolio_params())
    source = resolve_data(
        data, dataset=dataset, tz=tz, timeframe=options.timeframe, data_path=data_store(data_path)
    )
    config = build_config(
        source.symbols,
        name,
        given,
        start,
        end,
        cash,
        timeframe=source.timeframe,
        adjust=adjust,
        dataset=source.dataset,
        no_check=no_check,
        cost=options.cost(),
        risk=options.risk(),
    )
    from tape.store.shortable import with_stored_shortable

    return with_stored_shortable(config, data_store(data_path)), source.loader


def universe_data(data: Any, universe: str | None, timeframe: str | None, data_path: Any) -> Any:
    """The data a ``universe`` names (a bundled dataset, or every stored series of the timeframe);
    ``data`` itself when no universe is given."""
    if universe is None:
        if data is None or (isinstance(data, list) and not data):
            raise _config_error("name the symbols, or pass --universe sample|sp500_20|stored")
        return data
    if data is not None and len(data):
        raise _config_error(f"give symbols or --universe {universe}, not both")
    from tape.store.market import BUNDLED_NAMES, list_datasets

    if universe == "stored":
        frame = timeframe or "1Day"
        stored = sorted({d.symbol for d in list_datasets(data_store(data_path)) if d.timeframe == frame})
        if not stored:
            raise _config_error(f"--universe stored: no {frame} series in the data store")
        return stored
    if universe not in BUNDLED_NAMES:
        raise _config_error(f"unknown universe {universe!r}; use {', '.join(BUNDLED_NAMES)} or stored")
    return universe


def portfolio_args(strategy: str, given: list[str] | None, portfolio: list[str]) -> list[str] | None:
    """A portfolio strategy's parameters with the portfolio options (``--rebalance``, ...) added;
    those options given to a signal strategy are an error."""
    if not portfolio:
        return given
    from tape.events.strategies import strategy_class
    from tape.store.strategy_loader import resolve

    if strategy_class(resolve(strategy)).output != "weights":
        names = ", ".join("--" + p.partition("=")[0].replace("_", "-") for p in portfolio)
        raise _config_error(f"{names}: only portfolio strategies (momentum, inverse_vol, ...) rebalance")
    return [*(given or []), *portfolio]


@public
def replay(
    run: Any,
    *,
    rerun: bool = False,
    log: str | os.PathLike[str] | None = None,
    data_path: str | os.PathLike[str] | None = None,
) -> Any:
    """Rebuild a run from the log alone (``tape replay``), or re-run it (``tape replay --rerun``).

    ``run``: a run id (or a unique prefix of 4+ characters), or a :class:`tape.Result`. Without
    ``rerun`` returns a :class:`tape.Result` folded from the logged events only (no market data, no
    strategy code). With ``rerun=True`` feeds the recorded inputs through the deciders again and returns
    the dict ``tape replay --rerun --json`` prints (``identical``, ``compared``, ``data_changed``, and
    ``first_difference`` when they differ); a job summary id (``<job_id>:<n>``) is re-run in full as a
    logged backtest whose metrics must match. ``log``: as for :func:`tape.backtest`.
    """
    from tape.store.backtests import replay_report, rerun_summary
    from tape.store.backtests import rerun as rerun_run
    from tape.store.log import EventLog

    if isinstance(run, Result):
        log = run.log if log is None else log
        run = run.run_id
    if not isinstance(run, str) or not run:
        raise _config_error(f"run must be a run id or a tape.Result, got {type(run).__name__}")
    log_path = log_file(log)
    if rerun and ":" in run:
        return as_json_value(
            summary_rerun_json(rerun_summary(log_path, run, data_path=data_store(data_path)))
        )
    with EventLog.open(log_path, readonly=True) as opened:
        if not rerun:
            return Result(replay_report(opened, run), log=log_path, data_path=data_store(data_path))
        found = rerun_run(opened, run, data_path=data_store(data_path))
    return as_json_value(rerun_json(found))


def rerun_json(result: Any) -> dict[str, Any]:
    """What ``tape replay RUN --rerun --json`` prints for a run's re-run."""
    from tape.events.render import as_dict

    out: dict[str, Any] = {
        "run_id": result.run_id,
        "identical": result.first_difference is None,
        "compared": result.compared,
        "data_changed": result.data_changed,
        "code_changed": result.code_changed,
    }
    if result.first_difference is not None:
        seq, old, new = result.first_difference
        out["first_difference"] = {"seq": seq, "recorded": as_dict(old), "rerun": as_dict(new)}
    return out


def summary_rerun_json(result: Any) -> dict[str, Any]:
    """What ``tape replay JOB:N --rerun --json`` prints for a job summary's full re-run."""
    return {
        "summary": result.summary_id,
        "run_id": result.run_id,
        "identical": not result.mismatched,
        "data_changed": result.data_changed,
        "code_changed": result.code_changed,
        "mismatched": {k: list(v) for k, v in result.mismatched.items()},
    }


@public
def runs(*, log: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Every run in the log, oldest first (``tape runs``): one row a run, indexed by run id, with its
    mode, strategy, symbols, first and last bar time, status, closed trades and net P&L."""
    import pandas as pd

    from tape.result import MARKET_TZ
    from tape.store.log import EventLog
    from tape.store.runs import list_runs

    path = log_file(log)
    found = []
    if log is not None or path.exists():  # this session's log exists once something was logged
        with EventLog.open(path, readonly=True) as opened:
            found = list_runs(opened)
    columns = ["mode", "strategy", "symbols", "start", "end", "status", "trades", "net_pnl", "first_seq"]
    frame = pd.DataFrame(
        [
            {
                "run_id": r.run_id,
                "mode": r.mode,
                "strategy": r.strategy,
                "symbols": " ".join(r.symbols),
                "start": r.start_ts,
                "end": r.end_ts,
                "status": r.status,
                "trades": r.trades,
                "net_pnl": r.net_pnl,
                "first_seq": r.first_seq,
            }
            for r in found
        ],
        columns=["run_id", *columns],
    )
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column].astype("int64"), unit="ns", utc=True).dt.tz_convert(
            MARKET_TZ
        )
    return frame.set_index("run_id")


def _config_error(message: str) -> Exception:
    from tape.events.errors import ConfigError

    return ConfigError(message)


@public
def check(
    strategy: Any,
    *,
    params: dict[str, Any] | list[str] | None = None,
    symbols: list[str] | None = None,
    data_path: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Prove a strategy honest on the bundled daily sample (``tape check``): no look-ahead (bars after
    several cut points repriced, re-volumed and dropped change nothing before the cut), vectorised form
    equal to incremental form, deterministic with no signal inside warm-up, and the output contract.

    ``strategy``: as for :func:`tape.backtest`. ``symbols`` narrows the sample. Returns one row a check
    (``check``, ``passed``, ``detail``: the first offending bar when it fails); nothing is logged.
    """
    import pandas as pd

    from tape.store.strategy_check import check_strategy

    name, given = strategy_arg(strategy, param_args(params))
    from tape.events.strategies import parse_param_args

    results = check_strategy(
        name,
        parse_param_args(given or []),
        symbols,
        data_path=Path(data_path) if data_path is not None else None,
    )
    return pd.DataFrame(
        [{"check": r.name, "passed": r.passed, "detail": r.detail} for r in results]
    ).set_index("check")
