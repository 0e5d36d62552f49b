"""What the Python API hands back: a backtest's :class:`Result` and a validation job's :class:`JobResult`.

Both are views of the event log: every number comes from the run's logged events (the same fold the
CLI prints), so a notebook, `tape replay` and `tape backtest --json` agree to the last digit.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from tape.events.bars import BarSeries
    from tape.events.report import RunReport
    from tape.store.log import Recorded

MARKET_TZ = "America/New_York"
_HEADLINE = ("return_pct", "total_trades", "win_rate", "sharpe", "max_drawdown_pct", "total_pnl")


def as_json_value(value: Any) -> Any:
    """``value`` exactly as ``json.loads`` reads back what the CLI's ``--json`` printed."""
    return msgspec.json.decode(msgspec.json.encode(value))


def _times(ts: Any) -> pd.DatetimeIndex:
    import pandas as pd

    return pd.DatetimeIndex(pd.to_datetime(list(ts), unit="ns", utc=True)).tz_convert(MARKET_TZ)


class Result:
    """One logged backtest, read back as pandas objects.

    Attributes are computed from the run's events on first use: ``summary`` (the dict
    ``tape backtest --json`` prints), ``trades``, ``equity``, ``drawdown``, ``orders``, ``fills``,
    ``events``; ``explain(n)`` tells trade n's story; ``plot()`` draws equity against buy & hold.
    The run stays in ``log`` under ``run_id``: ``tape.replay(run_id, log=...)`` rebuilds it.
    """

    def __init__(
        self,
        report: RunReport,
        *,
        log: Path,
        series: list[BarSeries] | None = None,
        outcome: Any = None,
        data_path: Path | None = None,
    ) -> None:
        self._report = report
        self._series = series
        self._data_path = data_path  # where a result read back from the log finds its bars to plot
        self._cache: dict[str, Any] = {}
        self.log = log
        self.outcome = outcome  # the store's BacktestOutcome (the CLI reads the append and the bars)

    @property
    def report(self) -> RunReport:
        """The folded run (the internal struct the CLI renders)."""
        return self._report

    @property
    def run_id(self) -> str:
        """The run's id in the log (a hash of its config, data and code)."""
        return self._report.run_id

    @property
    def summary(self) -> dict[str, Any]:
        """The same dict as ``json.loads`` of ``tape backtest ... --json``: metrics and trades."""
        if "summary" not in self._cache:
            from tape.events.report import report_json

            self._cache["summary"] = as_json_value(report_json(self._report))
        return self._cache["summary"]  # type: ignore[no-any-return]

    @property
    def trades(self) -> pd.DataFrame:
        """One row a closed trade, prices exactly as filled (not rounded), times in New York."""
        import pandas as pd

        from tape.store.backtest_files import TRADE_COLUMNS

        columns = [*TRADE_COLUMNS[1:], "slippage"]  # the trades CSV's columns (its "n" is the index here)
        rows = [msgspec.structs.asdict(t) for t in self._report.trades]
        frame = pd.DataFrame(rows, columns=[*columns, "entry_ts", "exit_ts", "strategy"])
        frame["entry_time"] = _times(frame["entry_ts"])
        frame["exit_time"] = _times(frame["exit_ts"])
        frame = frame[columns]
        frame.index = pd.RangeIndex(1, len(frame) + 1, name="trade")
        return frame

    @property
    def equity(self) -> pd.Series:
        """Equity at each mark (net of costs), indexed by tz-aware market time."""
        import pandas as pd

        marks = self._report.marks
        return pd.Series([m.equity for m in marks], index=_times(m.ts for m in marks), name="equity")

    @property
    def drawdown(self) -> pd.Series:
        """Drawdown below the running equity peak at each mark, in percent (0 at a new high)."""
        import pandas as pd

        marks = self._report.marks
        return pd.Series(
            [m.drawdown_pct for m in marks], index=_times(m.ts for m in marks), name="drawdown_pct"
        )

    def _records(self) -> list[Recorded]:
        if "records" not in self._cache:
            from tape.store.log import EventLog
            from tape.store.runs import run_events

            with EventLog.open(self.log, readonly=True) as log:
                self._cache["records"] = list(run_events(log, self.run_id))
        return self._cache["records"]  # type: ignore[no-any-return]

    def _frame(self, kinds: set[str] | None) -> pd.DataFrame:
        import pandas as pd

        from tape.events.render import as_dict

        rows = []
        for rec in self._records():
            if kinds is not None and rec.kind not in kinds:
                continue
            fields = as_dict(rec.event)
            fields.pop("kind", None)
            fields.pop("ts", None)
            rows.append({"seq": rec.seq, "time": rec.ts, "stream": rec.stream, "kind": rec.kind, **fields})
        frame = pd.DataFrame(rows)
        if len(frame):
            frame["time"] = _times(frame["time"])
            frame = frame.set_index("seq")
        return frame

    @property
    def orders(self) -> pd.DataFrame:
        """Every order the run submitted (OrderSubmitted events), by log sequence number."""
        return self._frame({"order_submitted"})

    @property
    def fills(self) -> pd.DataFrame:
        """Every fill (Fill events): price, quantity, commission and slippage as logged."""
        return self._frame({"fill"})

    @property
    def events(self) -> pd.DataFrame:
        """Every event of the run, in log order: one row an event, its fields as columns."""
        return self._frame(None)

    def explain(self, n: int = 1) -> pd.DataFrame:
        """The events behind closed trade ``n`` (1 = the first): signal, risk check, orders, fills, exit."""
        import pandas as pd

        from tape.events.errors import ConfigError
        from tape.events.render import summarize
        from tape.store.explain import explain_trade
        from tape.store.log import EventLog

        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"n: the trade number starts at 1, got {n!r}")
        with EventLog.open(self.log, readonly=True) as log:
            try:
                records = explain_trade(log, self.run_id, n)
            except ConfigError as exc:
                raise ConfigError(str(exc).replace("--trade", "n =")) from None
        frame = pd.DataFrame(
            {
                "time": _times(r.ts for r in records),
                "stream": [r.stream for r in records],
                "kind": [r.kind for r in records],
                "detail": [summarize(r.event) for r in records],
            },
            index=pd.Index([r.seq for r in records], name="seq"),
        )
        return frame

    def plot(self) -> Figure:
        """Equity against buy & hold of the same symbols, with a drawdown panel below (a matplotlib
        Figure built without pyplot: a notebook shows it, ``fig.savefig(path)`` writes it)."""
        from tape.store.backtest_files import equity_chart

        return equity_chart(self._report, self._bars())

    def _bars(self) -> list[BarSeries]:
        if self._series is None:
            # Read back from the log alone: the bars come from the data the run names, when at hand.
            import msgspec as _msgspec

            from tape.events.backtest import BacktestConfig
            from tape.events.errors import TapeError
            from tape.store.backtests import load_config_bars

            try:
                config = _msgspec.convert(self._report.config, BacktestConfig)
                self._series = load_config_bars(config, self._data_path)
            except (TapeError, _msgspec.ValidationError):
                self._series = []
        return self._series

    def __repr__(self) -> str:
        s = self.summary
        shown = ", ".join(f"{k}={s.get(k)!r}" for k in _HEADLINE)
        return (
            f"<tape.Result {self.run_id}: {self._report.strategy} {self._report.params} on "
            f"{' '.join(self._report.symbols)} {s['start']}..{s['end']}; {shown}>"
        )

    def _repr_html_(self) -> str:
        s = self.summary
        head = (
            f"<b>tape backtest</b> <code>{html.escape(self.run_id)}</code>: "
            f"{html.escape(self._report.strategy)} {html.escape(str(self._report.params))} on "
            f"{html.escape(' '.join(self._report.symbols))}, {s['start']} to {s['end']}"
        )
        cells = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(str(s.get(k)))}</td></tr>"
            for k in _HEADLINE
        )
        return f"<div>{head}<table>{cells}</table></div>"


class JobResult:
    """A validation job (optimize, walkforward, validate, montecarlo): ``summary`` is the dict the
    command's ``--json`` prints, ``table`` the rows its table shows, as a DataFrame."""

    def __init__(self, kind: str, summary: dict[str, Any], table: pd.DataFrame, raw: Any = None) -> None:
        self.kind = kind
        self.summary = as_json_value(summary)
        self.table = table
        self.raw = raw  # the job's own result struct

    @property
    def job_id(self) -> str | None:
        """The job's id: its summaries sit in the log's ``job/<job_id>`` stream."""
        return self.summary.get("job_id")

    def __repr__(self) -> str:
        ident = self.job_id or self.summary.get("run_id", "")
        return f"<tape.JobResult {self.kind} {ident}: {len(self.table)} rows>"

    def _repr_html_(self) -> str:
        ident = html.escape(str(self.job_id or self.summary.get("run_id", "")))
        return f"<div><b>tape {self.kind}</b> <code>{ident}</code>{self.table.to_html(max_rows=30)}</div>"
