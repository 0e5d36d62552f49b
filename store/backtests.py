"""Running a backtest against the log: load the bars, run the core, append the run, fold its report.

Also the two replays: :func:`replay_report` folds a run back from the log alone, and :func:`rerun` feeds
the recorded inputs through the deciders again and compares decision by decision.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import msgspec

from tape.events.backtest import ORIGIN_KEY, BacktestConfig, config_of, run_backtest, run_id_for, run_started
from tape.events.bars import BarSeries
from tape.events.errors import DataError, StrategyError
from tape.events.report import RunReport, fold_run
from tape.events.schema import BacktestSummary, Event, RunEnded
from tape.events.strategies import make_strategy
from tape.store.log import AppendResult, EventLog, LogError
from tape.store.run_writer import PipedRunSink, open_sink
from tape.store.runs import find_run, run_events
from tape.store.strategy_loader import as_user_error, code_changed, strategies_of

Loader = Callable[[BacktestConfig], list[BarSeries]]
Progress = Callable[[int, int], None]

_EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
_code_version: list[str] = []


def code_version() -> str:
    """The package version and a digest of the pure core's sources: what a re-run must match."""
    if not _code_version:
        digest = hashlib.sha256()
        for path in sorted(_EVENTS_DIR.rglob("*.py")):
            digest.update(path.relative_to(_EVENTS_DIR).as_posix().encode())
            digest.update(path.read_bytes())
        try:
            version = metadata.version("tape")
        except metadata.PackageNotFoundError:
            version = "0+unknown"
        _code_version.append(f"{version}+{digest.hexdigest()[:12]}")
    return _code_version[0]


def load_config_bars(config: BacktestConfig, data_path: Path | None) -> list[BarSeries]:
    """The bars a config asks for, from the market-data store (or the bundled sample)."""
    from tape.store.market import load_many  # imported here: pandas-heavy, only needed when data is read

    return load_many(
        config.symbols,
        data_path=data_path,
        timeframe=config.timeframe,
        start=config.start or None,
        end=config.end or None,
        adjust=config.adjust,
        dataset=config.dataset,
    )


class BacktestOutcome(NamedTuple):
    """A finished backtest: its report, how the append went, the bars it read and the run's events
    (as appended, or as read back for a duplicate): the results files are written from them."""

    report: RunReport
    append: AppendResult
    series: list[BarSeries]
    events: Sequence[Event] = ()

    @property
    def duplicate(self) -> bool:
        return self.append.duplicate


def backtest(
    config: BacktestConfig,
    *,
    log_path: Path,
    data_path: Path | None,
    progress: Progress | None = None,
    loader: Loader | None = None,
) -> BacktestOutcome:
    """Validate, load, run and append one backtest. Bad input fails before the log is touched.

    An identical run (same config, data and code) is already in the log under the same id: it is not
    run again; its report is folded from the log and the outcome says ``duplicate``.
    """
    make_strategy(config.strategy, config.params)  # bad strategy or parameters: fail before any I/O
    series = (loader or (lambda c: load_config_bars(c, data_path)))(config)
    if not any(len(s) for s in series):
        raise DataError("no bars in the requested range")
    version = code_version()
    run_id = run_id_for(config, [s.fingerprint() for s in series], version)
    with EventLog.create(log_path) as log:
        stored = [r.event for r in run_events(log, run_id)]
        if stored and not isinstance(stored[-1], RunEnded):
            # A backtest is appended whole, in one transaction: a run without its end was cut off.
            raise LogError(f"backtest {run_id} is in {log_path} without its RunEnded; run `tape verify`")
        if stored:
            duplicate = AppendResult("duplicate", 0, 0, len(stored), {})
            return BacktestOutcome(fold_run(stored), duplicate, series, stored)
        sink = open_sink(log, run_id, bars=sum(len(s) for s in series))
        try:
            events = run_backtest(
                config, series, run_id=run_id, code_version=version, progress=progress, sink=sink.add
            )
            # Folded while the writer process is still appending: the two overlap on two cores.
            report = fold_run(events)
        except BaseException as exc:
            sink.abort()
            failure = as_user_error(exc) if isinstance(exc, Exception) else None
            if failure is None:
                raise
            _log_failed_run(log, config, series, run_id, version, failure)
            raise failure from None
        result = sink.commit()
        if isinstance(sink, PipedRunSink):
            log.defer_checkpoint()  # a long run's WAL is folded in by the next write, not on our exit
    return BacktestOutcome(report, result, series, events)


def _log_failed_run(
    log: EventLog,
    config: BacktestConfig,
    series: list[BarSeries],
    run_id: str,
    version: str,
    error: Exception,
) -> None:
    """A run the user's code broke: its start and a failed end, nothing else, under its own id (the
    same command re-run after a fix is a new attempt, not "already in the log")."""
    from tape.events.schema import RunEnded
    from tape.store.run_writer import run_items

    failed_id = f"{run_id}-failed"
    started = run_started(config, series, run_id=failed_id, mode="backtest", code_version=version)
    ended = RunEnded(ts=started.ts, run_id=failed_id, status="failed", message=str(error))
    log.append_batch(run_items(failed_id, [started, ended], 0))


def replay_report(log: EventLog, run_id: str) -> RunReport:
    """Fold a run's report from the log alone (no market data, no strategy code)."""
    started = find_run(log, run_id)
    return fold_run(r.event for r in run_events(log, started.run_id))


class RerunResult(NamedTuple):
    """What a re-run found: identical, or the first decision that differs."""

    run_id: str
    compared: int
    data_changed: list[str]  # symbols whose data fingerprint differs from the recorded one
    first_difference: tuple[int, Event | None, Event | None] | None  # (seq, recorded, re-run)
    code_changed: str = ""  # says so when the strategy's code is not the code the run ran


def rerun(log: EventLog, run_id: str, *, data_path: Path | None, loader: Loader | None = None) -> RerunResult:
    """Feed the run's recorded inputs (config, parameters, the data it names) through the deciders
    again and compare every decision with the log, stopping at the first that differs."""
    started = find_run(log, run_id)
    if started.mode != "backtest":
        raise DataError(f"run {started.run_id} is a {started.mode} run; --rerun replays backtests")
    config = config_of(started.config)
    notes = []
    for name in strategies_of(config):  # a user's strategy (or ensemble member) must be its run's code
        said, runnable = code_changed(
            name, started.config.get(ORIGIN_KEY, {}) if name == config.strategy else {}
        )
        if not runnable:
            raise StrategyError(said)
        notes.append(said)
    note = "; ".join(n for n in notes if n)
    series = (loader or (lambda c: load_config_bars(c, data_path)))(config)
    recorded_fp = {fp.symbol: fp.sha256 for fp in started.data}
    changed = [s.symbol for s in series if recorded_fp.get(s.symbol) != s.fingerprint().sha256]
    fresh = run_backtest(config, series, run_id=started.run_id, code_version=started.code_version)
    stored = list(run_events(log, started.run_id))
    compared = 0
    # RunStarted holds the data fingerprint (compared above); every later event is a decision or fact.
    for position in range(1, max(len(stored), len(fresh))):
        old = stored[position].event if position < len(stored) else None
        new = fresh[position] if position < len(fresh) else None
        seq = stored[position].seq if position < len(stored) else stored[-1].seq + position - len(stored) + 1
        if old != new:
            return RerunResult(started.run_id, compared, changed, (seq, old, new), note)
        compared += 1
    return RerunResult(started.run_id, compared, changed, None, note)


class SummaryRerun(NamedTuple):
    """A job's one-line result re-run in full as a logged backtest."""

    summary_id: str
    run_id: str
    data_changed: list[str]
    mismatched: dict[str, tuple[float, float | None]]  # metric -> (summary, full run)


def rerun_summary(
    log_path: Path, summary_id: str, *, data_path: Path | None, loader: Loader | None = None
) -> SummaryRerun:
    """Re-run one BacktestSummary (``<job_id>:<n>``) as a full backtest into the log and check that its
    metrics come out as the summary recorded them."""
    with EventLog.open(log_path, readonly=True) as log:
        found = log.get(summary_id)
    if found is None or not isinstance(found.event, BacktestSummary):
        raise DataError(f"no backtest summary {summary_id!r} in {log_path} (ids look like <job_id>:000003)")
    summary = found.event
    fields = set(BacktestConfig.__struct_fields__)
    config = msgspec.convert({k: v for k, v in summary.config.items() if k in fields}, BacktestConfig)
    # The summary names the symbols and parameters of this one backtest (a job's config covers them all).
    config = msgspec.structs.replace(config, symbols=list(summary.symbols), params=dict(summary.params))
    full = (loader or (lambda c: load_config_bars(c, data_path)))(config)
    window = [s.between(summary.start_ts, summary.end_ts) for s in full]
    window = [s for s in window if len(s)]
    recorded = {fp.symbol: fp.sha256 for fp in summary.data}
    changed = [s.symbol for s in window if recorded.get(s.symbol) != s.fingerprint().sha256]
    outcome = backtest(config, log_path=log_path, data_path=data_path, loader=lambda c: window)
    mismatched = {
        key: (value, outcome.report.metrics.get(key))
        for key, value in summary.metrics.items()
        if outcome.report.metrics.get(key) != value
    }
    return SummaryRerun(summary_id, outcome.report.run_id, changed, mismatched)
