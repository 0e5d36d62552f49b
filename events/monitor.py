"""The monitor: alert rules over a trading session's numbers, as a pure decide/evolve pair.

A driver (the replay engine's portfolio actor, the live session) calls :func:`decide_alerts` once per
timestamp or cycle with a :class:`Tick` and appends the Alert events it returns; :func:`evolve_monitor`
folds every event of the run (its own alerts included), so a resumed session rebuilds the same state
from the log and no alert is raised twice. Nothing here reads a clock: time comes in with the tick.

Rules (thresholds in :class:`MonitorConfig`; 0 disables a rule):

- ``drawdown``: equity ``max_drawdown_pct`` % or more below its peak. Once until it clears: it re-arms
  when the drawdown is back under half the threshold (``drawdown_cleared``, info), so noise around the
  threshold does not alert on every bar.
- ``daily_loss``: the day's P&L (equity against the previous session's close, as the risk gate counts
  it) at or below ``-daily_loss_pct`` %: new entries are blocked for the rest of the session. Once per
  day, shared with the risk gate's own daily-loss alert (same rule name and day).
- ``degradation``: the return over the last ``degradation_window`` sessions falls below the range a
  backtest of the same strategy produced (``expected_low_pct``: the ``degradation_quantile`` % quantile
  of the backtest's windows, see :func:`expected_low`). Once until it is back inside the range.
- ``feed_stalled``: a symbol delivered no bar on ``stall_ticks`` consecutive ticks on which the feed
  answered (others reported, or a live cycle ran). Once until the symbol reports again.
- ``actor_dead``: a session actor died (:func:`actor_dead_alert`); once per death.
- ``feed`` and ``broker`` (live sessions only, :func:`decide_outage`): a bar request, or an order
  submission, got no answer. Once per outage: it re-arms with ``feed_cleared``/``broker_cleared``
  (info) when requests answer again. The raised state is :func:`evolve_outages` folded over the run,
  so it needs no monitor configuration and survives a restart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

import msgspec

from tape.events.errors import ConfigError
from tape.events.schema import Alert, EquityMarked, Event

CLEARED = "_cleared"
TOLERANCE_PCT = 1e-9  # float noise: a live window equal to the backtest's bound is inside the range


class MonitorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Alert thresholds (percentages in percent). ``expected_low_pct``/``reference_run`` are filled by
    the driver from a backtest of the same strategy in the log (None: no degradation rule)."""

    max_drawdown_pct: float = 10.0
    daily_loss_pct: float = 5.0
    degradation_window: int = 20
    degradation_quantile: float = 5.0
    stall_ticks: int = 3
    expected_low_pct: float | None = None
    reference_run: str = ""

    def __post_init__(self) -> None:
        checks = [
            (
                0 <= self.max_drawdown_pct < 100,
                f"--alert-drawdown must be in [0, 100) %, got {self.max_drawdown_pct:g}",
            ),
            (
                0 <= self.daily_loss_pct < 100,
                f"--alert-daily-loss must be in [0, 100) %, got {self.daily_loss_pct:g}",
            ),
            (
                0 <= self.degradation_window <= 10_000,
                f"--degradation-window must be in [0, 10000] sessions, got {self.degradation_window}",
            ),
            (
                0 <= self.degradation_quantile < 50,
                f"--degradation-quantile must be in [0, 50) %, got {self.degradation_quantile:g}",
            ),
            (0 <= self.stall_ticks <= 10_000, f"--stall-ticks must be in [0, 10000], got {self.stall_ticks}"),
        ]
        for ok, message in checks:
            if not ok:  # NaN fails every comparison, so it lands here too
                raise ConfigError(message)


class Tick(NamedTuple):
    """What the monitor looks at after one timestamp (replay) or cycle (live)."""

    ts: int
    day: str  # session date, YYYY-MM-DD
    equity: float
    peak: float
    day_start_equity: float  # equity at the previous session's close (before this tick's mark)
    reported: frozenset[str] = frozenset()  # symbols that delivered a bar on this tick
    expected: frozenset[str] = frozenset()  # symbols that should have (data not ended); empty: no check


class MonitorState:
    """What the rules remember. Changed only by :func:`evolve_monitor`."""

    __slots__ = ("active", "alerted_days", "in_market", "marks", "missed", "start_equity")

    def __init__(self, start_equity: float) -> None:
        self.start_equity = start_equity
        self.active: set[str] = set()  # "drawdown", "degradation", "feed_stalled:AAPL" while alerted
        self.alerted_days: set[tuple[str, str]] = set()  # (rule, day) of once-a-day rules
        self.marks: list[float] = []  # session-close equities
        self.in_market: list[bool] = []  # ... and whether the session held a position
        self.missed: dict[str, int] = {}  # symbol -> consecutive ticks without a bar


def _key(alert: Alert) -> str:
    rule = alert.rule.removesuffix(CLEARED)
    return f"{rule}:{alert.symbol}" if rule == "feed_stalled" else rule


def evolve_monitor(state: MonitorState, event: Event) -> MonitorState:
    """Fold one event of the run into the monitor's state (other events are ignored)."""
    cls = event.__class__
    if cls is EquityMarked:
        state.marks.append(event.equity)  # type: ignore[attr-defined]
        state.in_market.append(event.bars_in_market > 0)  # type: ignore[attr-defined]
    elif cls is Alert:
        alert: Alert = event  # type: ignore[assignment]
        if alert.rule.endswith(CLEARED):
            state.active.discard(_key(alert))
        elif alert.rule == "daily_loss":
            state.alerted_days.add((alert.rule, alert.day))
        elif alert.rule in ("drawdown", "degradation", "feed_stalled"):
            state.active.add(_key(alert))
    return state


def observe_feed(state: MonitorState, tick: Tick) -> None:
    """Count, per expected symbol, the consecutive ticks without a bar (part of evolving on a tick)."""
    for symbol in tick.expected:
        state.missed[symbol] = 0 if symbol in tick.reported else state.missed.get(symbol, 0) + 1


def window_returns(
    start_equity: float, marks: Sequence[float], in_market: Sequence[bool], window: int
) -> list[float]:
    """Returns (percent) over every ``window`` consecutive sessions, counted from the session before
    the run first held a position (the warm-up of a strategy is not its performance)."""
    if window <= 0:
        return []
    first = next((i for i, held in enumerate(in_market) if held), None)
    if first is None:
        return []
    series = [start_equity, *marks]  # series[i + 1] is the close of session i
    base = first  # the close before the first session in the market
    return [
        (series[end] / series[end - window] - 1.0) * 100.0
        for end in range(base + window, len(series))
        if series[end - window] > 0
    ]


def expected_low(returns: Sequence[float], quantile_pct: float) -> float | None:
    """The ``quantile_pct`` % quantile (linear interpolation) of a backtest's window returns: the low
    edge of the range the strategy is expected to stay in. None without windows."""
    if not returns:
        return None
    ordered = sorted(returns)
    position = (len(ordered) - 1) * quantile_pct / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def decide_alerts(state: MonitorState, config: MonitorConfig, tick: Tick) -> list[Alert]:
    """The alerts (and clearances) this tick raises, given what was raised before. Pure: the state
    changes only when the driver folds the returned events (and calls :func:`observe_feed`)."""
    return [alert for rule in _TICK_RULES for alert in rule(state, config, tick)]


def _drawdown_alerts(state: MonitorState, config: MonitorConfig, tick: Tick) -> list[Alert]:
    """Drawdown from the peak: raised once, cleared when back under half the threshold."""
    if config.max_drawdown_pct <= 0 or tick.peak <= 0:
        return []
    drawdown = (tick.peak - tick.equity) / tick.peak * 100.0
    if "drawdown" not in state.active and drawdown >= config.max_drawdown_pct:
        return [
            Alert(
                ts=tick.ts,
                rule="drawdown",
                severity="critical",
                message=f"drawdown {drawdown:.2f} % from the peak of {tick.peak:,.2f} reached the "
                f"{config.max_drawdown_pct:g} % threshold (equity {tick.equity:,.2f})",
                value=drawdown,
                threshold=config.max_drawdown_pct,
                day=tick.day,
            )
        ]
    if "drawdown" in state.active and drawdown < config.max_drawdown_pct / 2:
        return [
            Alert(
                ts=tick.ts,
                rule="drawdown" + CLEARED,
                severity="info",
                message=f"drawdown back to {drawdown:.2f} % (under half the threshold)",
                value=drawdown,
                threshold=config.max_drawdown_pct / 2,
                day=tick.day,
            )
        ]
    return []


def _daily_loss_alerts(state: MonitorState, config: MonitorConfig, tick: Tick) -> list[Alert]:
    """The day's loss reached the limit: once a day (the risk gate blocks entries at the same limit)."""
    if config.daily_loss_pct <= 0 or tick.day_start_equity <= 0:
        return []
    day_pct = (tick.equity / tick.day_start_equity - 1.0) * 100.0
    if day_pct > -config.daily_loss_pct or ("daily_loss", tick.day) in state.alerted_days:
        return []
    return [
        Alert(
            ts=tick.ts,
            rule="daily_loss",
            severity="critical",
            message=f"daily loss {day_pct:.2f} % hit the {config.daily_loss_pct:g} % limit; "
            "no new entries until the next session",
            value=day_pct,
            threshold=-config.daily_loss_pct,
            day=tick.day,
        )
    ]


def _stall_alerts(state: MonitorState, config: MonitorConfig, tick: Tick) -> list[Alert]:
    """A symbol whose bars stopped while the feed answered; cleared when they arrive again."""
    if config.stall_ticks <= 0:
        return []
    out: list[Alert] = []
    for symbol in sorted(tick.expected):
        missed = 0 if symbol in tick.reported else state.missed.get(symbol, 0) + 1
        key = f"feed_stalled:{symbol}"
        if missed >= config.stall_ticks and key not in state.active:
            out.append(
                Alert(
                    ts=tick.ts,
                    rule="feed_stalled",
                    severity="warning",
                    message=f"no {symbol} bar for {missed} ticks while the feed answered",
                    value=float(missed),
                    threshold=float(config.stall_ticks),
                    symbol=symbol,
                    day=tick.day,
                )
            )
        elif missed == 0 and key in state.active:
            out.append(
                Alert(
                    ts=tick.ts,
                    rule="feed_stalled" + CLEARED,
                    severity="info",
                    message=f"{symbol} bars arrive again",
                    symbol=symbol,
                    day=tick.day,
                )
            )
    return out


# The tick's rules, in the order their alerts are logged.
_TICK_RULES = (_drawdown_alerts, _daily_loss_alerts, _stall_alerts)


def decide_degradation(state: MonitorState, config: MonitorConfig, ts: int, day: str) -> list[Alert]:
    """After a session's mark: is the rolling window return outside the backtest's range?"""
    low = config.expected_low_pct
    if low is None or config.degradation_window <= 0:
        return []
    returns = window_returns(state.start_equity, state.marks, state.in_market, config.degradation_window)
    if not returns:
        return []
    latest = returns[-1]
    below = latest < low - TOLERANCE_PCT
    if below and "degradation" not in state.active:
        where = f" (backtest {config.reference_run})" if config.reference_run else ""
        return [
            Alert(
                ts=ts,
                rule="degradation",
                severity="warning",
                message=f"{config.degradation_window}-session return {latest:.2f} % is below the "
                f"backtest's expected range (>= {low:.2f} %, its {config.degradation_quantile:g} % "
                f"quantile){where}",
                value=latest,
                threshold=low,
                day=day,
            )
        ]
    if not below and "degradation" in state.active:
        return [
            Alert(
                ts=ts,
                rule="degradation" + CLEARED,
                severity="info",
                message=f"{config.degradation_window}-session return {latest:.2f} % is back in range",
                value=latest,
                threshold=low,
                day=day,
            )
        ]
    return []


def actor_dead_alert(ts: int, day: str, actor: str, symbol: str = "", detail: str = "") -> Alert:
    """The alert for an actor that died (the driver notices: a call to it failed)."""
    who = f"{actor} actor" + (f" of {symbol}" if symbol else "")
    return Alert(
        ts=ts,
        rule="actor_dead",
        severity="critical",
        message=f"{who} died{': ' + detail if detail else ''}",
        symbol=symbol,
        day=day,
    )


OutageRule = Literal["feed", "broker", "market_data"]
OUTAGE_RULES: dict[str, str] = {  # rule -> what failed
    "feed": "bar requests",
    "broker": "order requests",
    "market_data": "the engine's market-data actor",  # its sessions read over REST meanwhile
}


def evolve_outages(raised: frozenset[str], event: Event) -> frozenset[str]:
    """The live outage rules standing after ``event``: a ``feed``/``broker`` alert raises its rule,
    its ``_cleared`` alert re-arms it, anything else leaves them. Folded over a run's events, this is
    what a restarted session knows without asking anyone."""
    if event.__class__ is not Alert:
        return raised
    rule: str = event.rule  # type: ignore[attr-defined]
    if rule in OUTAGE_RULES:
        return raised | {rule}
    base = rule.removesuffix(CLEARED)
    if base != rule and base in OUTAGE_RULES:
        return raised - {base}
    return raised


def decide_outage(
    raised: frozenset[str], rule: OutageRule, ts: int, *, failure: str | None, answered: bool = True
) -> list[Alert]:
    """The alert one outcome of ``rule``'s requests calls for. ``failure``: why a request got no
    answer (None: none failed); ``answered``: some request did answer. The first failure raises the
    rule (warning); failures while it stands add nothing (an hour-long outage is one message, not one
    per cycle); an answer with no failure clears it (info), which re-arms it."""
    if failure is not None:
        if rule in raised:
            return []
        return [Alert(ts=ts, rule=rule, severity="warning", message=failure)]
    if answered and rule in raised:
        what = OUTAGE_RULES[rule]
        return [Alert(ts=ts, rule=rule + CLEARED, severity="info", message=f"{what} answer again")]
    return []


def fold_monitor(start_equity: float, events: Iterable[Event]) -> MonitorState:
    """A monitor state rebuilt from a run's events (a resumed session)."""
    state = MonitorState(start_equity)
    for event in events:
        evolve_monitor(state, event)
    return state


class SessionMonitor:
    """The rules bound to one session: a driver hands it each timestamp's events and numbers and
    appends the alerts it returns. Deterministic: the same bars give the same alerts."""

    __slots__ = ("config", "ended", "started", "state")

    def __init__(self, config: MonitorConfig, start_equity: float) -> None:
        self.config = config
        self.state = MonitorState(start_equity)
        self.started: set[str] = set()  # symbols whose data has begun ...
        self.ended: set[str] = set()  # ... and ended (neither late starters nor finished ones stall)

    def fold(self, events: Iterable[Event]) -> None:
        """Fold events the session wrote (its resume, or this timestamp's decisions)."""
        state = self.state
        for event in events:
            evolve_monitor(state, event)

    def refold(self, written: Sequence[Event], *, reported: Iterable[str], ended: Iterable[str]) -> None:
        """Fold one timestamp a previous process already decided (its alerts are in ``written``): what
        :meth:`after_timestamp` would leave behind, without deciding again (a resumed session)."""
        self.fold(written)
        seen = frozenset(reported)
        self.started |= seen
        self.ended |= set(ended)
        observe_feed(self.state, Tick(0, "", 0.0, 0.0, 0.0, seen, frozenset(self.started - self.ended)))

    def after_timestamp(
        self,
        written: Sequence[Event],
        *,
        ts: int,
        day: str,
        equity: float,
        peak: float,
        day_start_equity: float,
        reported: Iterable[str] | None,
        ended: Iterable[str] = (),
        marked: bool = False,
    ) -> list[Alert]:
        """Alerts after one timestamp whose decisions were ``written`` (already folded by the portfolio).

        ``reported`` are the symbols that delivered a bar (None: the feed did not answer, no stall
        check); ``marked`` says the timestamp closed a session (the degradation rule looks then).
        """
        self.fold(written)  # the risk gate's own daily-loss alert counts, so it is not repeated
        expected: frozenset[str] = frozenset()
        seen: frozenset[str] = frozenset()
        if reported is not None:
            seen = frozenset(reported)
            self.started |= seen
            self.ended |= set(ended)
            expected = frozenset(self.started - self.ended)
        tick = Tick(ts, day, equity, peak, day_start_equity, seen, expected)
        alerts = decide_alerts(self.state, self.config, tick)
        self.fold(alerts)
        if marked:
            more = decide_degradation(self.state, self.config, ts, day)
            self.fold(more)
            alerts += more
        observe_feed(self.state, tick)
        return alerts
