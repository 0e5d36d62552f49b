"""A live trading session: scheduled cycles of completed bars, real orders at a broker, all in the log.

Each cycle (run at its scheduled times by cycles.py ``run_schedule``):

1. collect what the broker filled since the last cycle (entries, exits, protective stops and targets);
2. read the bars that closed since the last cycle and feed them, in time order, to the strategies and
   to the same portfolio core a backtest uses (events/session.py): only the newest bar of a catch-up
   may trade, older ones just update indicators and prices;
3. append every decision durably *before* acting on it, then place or cancel the orders (orders.py);
4. log the cycle with its timing and the broker's health (``cycle_completed``).

:class:`LiveSession` only sequences start, cycle and stop; each job has its own module:
resume.py (fold the log, re-warm), decisions.py (a timestamp's bars decided), orders.py (log, then send
or cancel), fills.py (what the broker executed), guard.py (the race between a protective order and its
cancel), crypto.py (stop-limits and watched targets and trailing stops for pairs), trailing.py (a
stock's trailing stop at the broker), health.py (outage alerts,
reconciliation) and projection.py (status, trade logs); contracts.py says what the session needs of a
broker, a feed and strategies.
A timestamp's bars are decided together and logged in one transaction, so a crash never leaves half a
timestamp behind.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from tape.actors.alpaca.feed import LiveBar
from tape.actors.live_session import projection, resume
from tape.actors.live_session.borrow import with_broker_shortable
from tape.actors.live_session.contracts import (
    Broker,
    CycleReport,
    Feed,
    LocalStrategies,
    Strategies,
    StreamHealthFeed,
)
from tape.actors.live_session.decisions import by_timestamp, decide_timestamp
from tape.actors.live_session.fills import collect_fills
from tape.actors.live_session.guard import ProtectiveGuard
from tape.actors.live_session.health import (
    BrokerHealth,
    Outages,
    monitor_alerts,
    reconciliation,
    trade_updates_alert,
)
from tape.actors.live_session.orders import commit, recancel, resend_working_orders
from tape.actors.live_session.working import WorkedBars
from tape.events.backtest import BacktestConfig
from tape.events.errors import DataError
from tape.events.monitor import MonitorConfig, SessionMonitor
from tape.events.portfolio_state import evolve_each
from tape.events.recorded import bars_recorded
from tape.events.schema import (
    ActorStarted,
    ActorStopped,
    CycleCompleted,
    EquityMarked,
    Event,
    OrderCancelled,
    OrderSubmitted,
    PositionClosed,
    PositionOpened,
    Reconciled,
    RunStarted,
)
from tape.events.session import TradingSession
from tape.events.strategies import make_strategy
from tape.store.log import EventLog
from tape.store.run_writer import run_items


class LiveSession:
    """One run: its portfolio, strategies, broker, feed and the log it appends to."""

    def __init__(
        self,
        config: BacktestConfig,
        *,
        run_id: str,
        broker: Broker,
        feed: Feed,
        log_path: Path,
        strategies: Strategies | None = None,
        label: str = "",
        trade_logs: Path | None = None,
        monitor: MonitorConfig | None = None,
    ) -> None:
        self.run_id = run_id
        self.strategy = make_strategy(config.strategy, config.params)
        self.broker, self.feed = broker, feed
        self.use_config(config)
        self.strategies = strategies or LocalStrategies(config.strategy, config.params, config.symbols)
        self.log = EventLog.create(log_path, durable=True)
        self.label = label
        self.trade_logs = trade_logs
        self.next_seq = 1
        self.opening: RunStarted | None = None
        self.cancels_in_flight: list[str] = []  # cancels the log holds since its last completed cycle
        self.guard = ProtectiveGuard()
        self.worked = WorkedBars()  # bars each working limit/stop entry has worked
        self.outages = Outages()
        self.monitor = SessionMonitor(monitor, config.cash) if monitor is not None else None
        self.history: list[LiveBar] = []  # the warm-up bars (the rest of what was seen is in the log)
        self.cursor = 0  # start of the newest bar the log holds
        self.cycles = 0
        self.last_cycle_ts = 0  # when the last cycle ran (a restarted scheduler runs a missed one)
        self.last_decision: dict[str, Any] = {}
        self.orders_sent = 0
        self._stream_alerted = False  # the broker's trade-update stream was found down (alerted once)

    def use_config(self, config: BacktestConfig) -> None:
        """Trade on ``config``: called before anything is folded, warmed or decided (a new config starts
        the portfolio and its indicators afresh)."""
        if getattr(self, "config", None) == config:
            return
        self.config = config
        self.session = TradingSession(config, self.run_id, self.strategy.name)

    # ------------------------------------------------------------------ start, stop

    def start(self, now_ns: int, days_back: int, *, detail: str = "") -> int:
        """Resume the run from the log or open it; warm the strategies up. Returns events folded.
        ``detail`` says why the actor (re)started; it is logged with ActorStarted."""
        folded, logged = resume.fold_log(self)  # a resumed run takes the shortable list it logged
        if self.opening is None:  # a new run: Alpaca's flags, before the warm-up and the RunStarted
            self.use_config(with_broker_shortable(self.config, self.broker))
        history, alerts = resume.warm_up_bars(self, now_ns, days_back)
        self.history = history
        resume.warm_up(self, history + logged)
        if self.opening is None:
            opening = resume.opening(self, history, days_back)
            # The warm-up window is logged whole: a what-if re-runs the session from the log alone.
            warm = resume.series(history, self.config.symbols, self.feed.timeframe)
            self.append([opening, *bars_recorded(warm, "warm_up", opening.ts)])
            self.opening = opening
            self.cursor = max(b.ts for b in history)
        started = self._actors_started(now_ns, folded, detail, history + logged)
        recancel(self)
        resent, health = resend_working_orders(self, now_ns)
        _, more = commit(self, started + alerts + resent, now_ns)  # and an exit for a part fill's rest
        self.orders_sent += health.joined(more).placed
        self.reconcile(now_ns)
        self._check_trade_updates(now_ns)
        if self.trade_logs is not None and folded:
            self.write_trade_logs(self.trade_logs)  # whole: a crash may have cut off the last write
        return folded

    def _actors_started(self, now_ns: int, folded: int, detail: str, seen: list[LiveBar]) -> list[Event]:
        what = f"{len(self.history)} warm-up bars and {len(seen) - len(self.history)} logged bars"
        out: list[Event] = [
            ActorStarted(
                ts=now_ns,
                actor="portfolio",
                strategy=self.strategy.name,
                events_folded=folded,
                detail=f"{detail + '; ' if detail else ''}{what}, resumed at bar {self.cursor}",
                pid=os.getpid(),
            )
        ]
        return out + [
            ActorStarted(
                ts=now_ns,
                actor="strategy",
                symbol=actor["symbol"],
                strategy=self.strategy.name,
                detail=f"warmed on {sum(1 for b in seen if b.symbol == actor['symbol'])} bars",
                pid=actor["pid"],
            )
            for actor in self.strategies.actors()
        ]

    def stop(self, now_ns: int, reason: str = "stop") -> None:
        """Log the stop and the final reconciliation; working orders stay at the broker."""
        self.reconcile(now_ns)
        self.append([ActorStopped(ts=now_ns, actor="portfolio", strategy=self.strategy.name, reason=reason)])
        self.log.close()

    def reconcile(self, now_ns: int) -> Reconciled:
        """Compare the folded positions with the broker's and log what differs."""
        event = reconciliation(self.broker, list(self.config.symbols), self.session.state, now_ns)
        self.append([event])
        return event

    # ------------------------------------------------------------------ one cycle

    def run_cycle(self, now_ns: int) -> CycleReport:
        """Fills, new bars, decisions, orders; then the cycle's own event."""
        started = time.perf_counter()
        self.cycles += 1
        self.last_cycle_ts = now_ns
        events, health = collect_fills(self, now_ns)
        bars, skipped = self._new_bars(now_ns)
        groups = by_timestamp(bars)
        for k, group in enumerate(groups):
            decided, more = decide_timestamp(self, group, trade=k == len(groups) - 1)
            events, health = events + decided, health.joined(more)
        self._check_trade_updates(now_ns)
        self.broker.await_orders(_market_orders_sent(events))  # a trade-update stream says when to poll
        filled, more = collect_fills(self, now_ns)
        events, health = events + filled, health.joined(more)
        self._judge_broker(health, now_ns)
        if self.monitor is not None:  # a stalled symbol is judged per cycle in which the feed answered
            events += self.alerts([], now_ns, None if skipped.startswith("feed error") else bars)
        self._log_restarts(now_ns)
        duration_ms = round((time.perf_counter() - started) * 1000.0, 3)
        self.append(
            [
                CycleCompleted(
                    ts=now_ns,
                    cycle=self.cycles,
                    duration_ms=duration_ms,
                    symbols=list(self.config.symbols),
                    skipped=skipped,
                    broker_errors=list(health.errors),
                )
            ]
        )
        self._project(events)
        orders = sum(1 for e in events if isinstance(e, OrderSubmitted))
        return CycleReport(self.cycles, now_ns, len(bars), len(events), orders)

    def _new_bars(self, now_ns: int) -> tuple[list[LiveBar], str]:
        """The bars that closed since the cursor, and why there are none ("" when there are)."""
        try:
            bars = self.feed.completed(self.config.symbols, self.cursor, now_ns)
        except DataError as exc:
            # The cursor stays put: the next cycle asks for everything since, so the gap is back-filled.
            # Every failed cycle says so in its CycleCompleted; the alert goes out once per outage.
            bars, skipped = [], f"feed error: {exc}"
            self.append(self.outages.judge("feed", now_ns, failure=str(exc)))
        else:
            skipped = "" if bars else "no new bars"
            self.append(self.outages.judge("feed", now_ns, failure=None))
        if isinstance(self.feed, StreamHealthFeed):  # the engine's shared stream
            failure, answered = self.feed.take_market_data_outcome()
            self.append(self.outages.judge("market_data", now_ns, failure=failure, answered=answered))
        return bars, skipped

    def _judge_broker(self, health: BrokerHealth, now_ns: int) -> None:
        """The cycle's ``broker`` outage verdict, judged once: a lookup that answers beside a re-send
        that does not is still the outage, so the alert does not flap within one cycle."""
        self.orders_sent += health.placed
        if not health.errors:
            self.append(self.outages.judge("broker", now_ns, failure=None, answered=health.answered))

    def alerts(
        self,
        written: list[Event],
        ts: int,
        bars: list[LiveBar] | None,
        *,
        day_start: float | None = None,
        marked: bool = False,
    ) -> list[Event]:
        """The monitor's alerts after a timestamp or a cycle, folded into the portfolio and logged."""
        assert self.monitor is not None
        alerts = monitor_alerts(
            self.monitor, self.session, written, ts, bars, day_start=day_start, marked=marked
        )
        self.append(evolve_each(self.session.state, alerts))  # alerts place no order
        return alerts

    def _check_trade_updates(self, now_ns: int) -> None:
        """The ``trade_updates`` alert, once: the first time the stream is found down."""
        if self._stream_alerted:
            return
        alerts = trade_updates_alert(self.broker, now_ns)
        if alerts:
            self._stream_alerted = True
            self.append(alerts)

    def _log_restarts(self, now_ns: int) -> None:
        """Strategy actors replaced during the cycle; a replacement is followed by a reconciliation."""
        restarted = self.strategies.take_restarts()
        self.append(
            [
                ActorStarted(
                    ts=now_ns,
                    actor="strategy",
                    symbol=r.symbol,
                    strategy=self.strategy.name,
                    detail=f"replaced after {r.cause}; warmed on {r.bars} bars",
                    pid=r.pid,
                )
                for r in restarted
            ]
        )
        if restarted:
            self.reconcile(now_ns)

    def _project(self, events: list[Event]) -> None:
        """Bring the cycle's projections up to date: the trade logs of the days it changed, and the SQL
        views (a session runs for days: its cycles become queryable as they end, not at close)."""
        changed = [e.ts for e in events if isinstance(e, PositionClosed | PositionOpened | EquityMarked)]
        if self.trade_logs is not None and changed:
            self.write_trade_logs(self.trade_logs, since=min(changed))
        self.log.sync_views(wait=False)

    # ------------------------------------------------------------------ the log and its projections

    def append(self, events: list[Event]) -> None:
        """Append ``events`` to the run's stream (one transaction) and fold what the session tracks."""
        if not events:
            return
        self.log.append_batch(run_items(self.run_id, events, self.next_seq))
        self.next_seq += len(events)
        for event in events:
            self.last_decision = projection.decision_of(event) or self.last_decision
            self.guard.track(event)

    def bars_seen(self, symbol: str) -> list[LiveBar]:
        """Every bar of ``symbol`` the run's strategy has been fed; a replaced StrategyActor is re-warmed
        on exactly these."""
        return resume.bars_seen(self, symbol)

    def write_trade_logs(self, root: Path, since: int | None = None) -> list[Path]:
        """Write the run's part of logs/trades_<symbol>_<day>.csv and the daily summaries, from the log
        (``since``: only the days from that timestamp's on)."""
        return projection.write_trade_logs(self, root, since)

    def status(self) -> dict[str, Any]:
        """Positions, cash, P&L and the cycle count, for `tape status`."""
        return projection.status(self)


def _market_orders_sent(events: list[Event]) -> list[str]:
    """The market orders a batch sent (not those it cancelled unsent): the ones to await."""
    unsent = {e.client_order_id for e in events if isinstance(e, OrderCancelled)}
    return [
        e.client_order_id
        for e in events
        if isinstance(e, OrderSubmitted) and e.order_type == "market" and e.client_order_id not in unsent
    ]
