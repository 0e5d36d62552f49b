"""A live trading session: scheduled cycles of completed bars, real orders at a broker, all in the log.

Each cycle (see :func:`run_schedule`):

1. collect what the broker filled since the last cycle (entries, exits, protective stops and targets);
2. read the bars that closed since the last cycle and feed them, in time order, to the strategies and
   to the same portfolio core a backtest uses (events/session.py): only the newest bar of a catch-up
   may trade, older ones just update indicators and prices;
3. append every decision durably *before* acting on it, then place or cancel the orders; an order the
   log holds is re-sent under the same ``client_order_id`` after a crash, which the broker refuses as a
   duplicate, so a decision can never place two orders;
4. log the cycle with its timing (``cycle_completed``).

Crypto pairs (see :meth:`LiveSession._protect`, :meth:`LiveSession._watch_pair`): Alpaca takes no OCO
for crypto, so a pair's protection is a stop-limit at the broker (it covers a crash or a gap between
cycles) and the take-profit is watched by the session on each completed bar. Alpaca reports no fee on
a crypto fill but takes it from the asset the trade credits, so a pair's Fill carries the fee as its
commission and the quantity the position really changed by (:func:`events.costs.credited_fee`).

A session whose run is already in the log resumes it: the portfolio is folded from the log, the
strategies re-warm on exactly the bars they saw before (the warm-up window the run's RunStarted
fingerprinted, then every bar the log recorded), and working orders are re-checked. A timestamp's bars
are decided together and logged in one transaction, so a crash never leaves half a timestamp behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import msgspec
import numpy as np

from tape.actors.alpaca.broker import BrokerOrder, BrokerOrderNotFound, BrokerRejected, BrokerUnreachable
from tape.actors.alpaca.feed import LiveBar
from tape.actors.clock import Clock
from tape.actors.schedule import is_crypto, is_session_end, next_run
from tape.events.backtest import BacktestConfig, run_started
from tape.events.bars import BarSeries, session_days
from tape.events.costs import credited_fee, qty_tolerance
from tape.events.errors import DataError
from tape.events.monitor import MonitorConfig, OutageRule, SessionMonitor, decide_outage, evolve_outages
from tape.events.portfolio import Order, decide_exit, decide_fill, evolve
from tape.events.schema import (
    ActorStarted,
    ActorStopped,
    Alert,
    BarReceived,
    CycleCompleted,
    EquityMarked,
    Event,
    Fill,
    OrderCancelled,
    OrderRejected,
    OrderSubmitted,
    PositionClosed,
    PositionOpened,
    Reconciled,
    RiskRejected,
    RunStarted,
    Signal,
)
from tape.events.session import TradingSession
from tape.events.strategies import make_strategy
from tape.events.streams import bars_stream
from tape.store.log import EventLog
from tape.store.run_writer import run_items

Decision = tuple[int, dict[str, float], str]  # (side, indicator values, reason)
DAY_NS = 86_400_000_000_000
CANCEL_CHECKS = 5  # reads of a cancelled protective order before its exit is sent (see _clear_protective)
CANCEL_CHECK_WAIT_S = 0.2  # between two of them
NOT_SENT = "not sent: protective filled first"
UNSENT = ("broker", "end of data", NOT_SENT)  # cancels logged for orders the broker does not work


def live_run_id(config: BacktestConfig, base_url: str) -> str:
    """The same configuration on the same account is the same run: a restart resumes it."""
    return "live-" + hashlib.sha256(msgspec.msgpack.encode([config, base_url])).hexdigest()[:12]


class Broker(Protocol):
    """What the session needs of a broker (AlpacaBroker satisfies it)."""

    def submit(self, order: OrderSubmitted) -> BrokerOrder: ...

    def order(self, client_order_id: str) -> BrokerOrder: ...

    def cancel(self, client_order_id: str) -> None: ...

    def positions(self) -> dict[str, float]: ...


class Feed(Protocol):
    """Completed bars (AlpacaBarFeed satisfies it). An engine session's shared-stream feed also offers
    ``take_market_data_outcome()`` (actors/market_data.py), which the cycle turns into the
    ``market_data`` outage alert."""

    timeframe: str

    def completed(self, symbols: list[str], after_ns: int, now_ns: int) -> list[LiveBar]: ...


class Restarted(NamedTuple):
    """A strategy actor that died and was replaced (and re-warmed) during a cycle."""

    symbol: str
    pid: int
    bars: int  # bars it was re-warmed on
    cause: str


class Strategies(Protocol):
    """Where a session's strategies run: in this process, or one StrategyActor per symbol on Ray."""

    def warm(self, bars: list[LiveBar]) -> None:
        """Feed history (indicators only: decisions on it were made, or not, before)."""
        ...

    def decide(self, bar: LiveBar) -> Decision: ...

    def actors(self) -> list[dict[str, Any]]:
        """Health of each strategy actor: symbol, pid, alive, restarts ([] in-process)."""
        ...

    def take_restarts(self) -> list[Restarted]:
        """Actors replaced since the last call, for the session to log."""
        ...


class LocalStrategies:
    """One incremental strategy per symbol, in this process (the engine uses Ray actors instead)."""

    def __init__(self, name: str, params: dict[str, Any], symbols: Sequence[str]) -> None:
        strategy = make_strategy(name, params)
        self._strategy = strategy
        self._live = {s: strategy.live() for s in symbols}

    def warm(self, bars: list[LiveBar]) -> None:
        for bar in bars:
            self.decide(bar)

    def decide(self, bar: LiveBar) -> Decision:
        side, values = self._live[bar.symbol].on_bar(bar.open, bar.high, bar.low, bar.close, bar.volume)
        return side, values, self._strategy.describe(side, values) if side else ""

    def actors(self) -> list[dict[str, Any]]:
        return []

    def take_restarts(self) -> list[Restarted]:
        return []


class CycleReport(NamedTuple):
    """What one cycle did."""

    cycle: int
    ts: int
    bars: int
    events: int
    orders: int


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
        self.config, self.run_id = config, run_id
        self.strategy = make_strategy(config.strategy, config.params)
        self.broker, self.feed = broker, feed
        self.session = TradingSession(config, run_id, self.strategy.name)
        self.strategies = strategies or LocalStrategies(config.strategy, config.params, config.symbols)
        self._decide = self.strategies.decide
        self._log = EventLog.create(log_path, durable=True)
        self._label = label
        self._trade_logs = trade_logs
        self._next = 1
        self._opening: RunStarted | None = None
        self._cancels_in_flight: list[str] = []  # cancels the log holds since its last completed cycle
        # The race between a protective order and its cancel (see _clear_protective), folded from the
        # log: each symbol's newest protective order, and the symbols whose working exit follows our
        # cancel of it (symbol -> its client order id) until the broker confirms the cancel.
        self._protectives: dict[str, OrderSubmitted] = {}
        self._guarded: dict[str, str] = {}
        self._confirmed: set[str] = set()  # cancels the broker confirmed in this process
        self._history: list[LiveBar] = []  # the warm-up bars (the rest of what was seen is in the log)
        self.cursor = 0  # start of the newest bar the log holds
        self.cycles = 0
        self.last_cycle_ts = 0  # when the last cycle ran (a restarted scheduler runs a missed one)
        self.last_decision: dict[str, Any] = {}
        self.orders_sent = 0
        self._monitor = SessionMonitor(monitor, config.cash) if monitor is not None else None
        self._outages: frozenset[str] = frozenset()  # "feed"/"broker" alerts standing (folded from the log)
        self._broker_answered = False  # this cycle: some broker request answered ...
        self._broker_errors: list[str] = []  # ... and the order submissions that got no answer
        self._stream_alerted = False  # the broker's trade-update stream was found down (alerted once)

    # ------------------------------------------------------------------ start, resume, stop

    def start(self, now_ns: int, days_back: int, *, detail: str = "") -> int:
        """Resume the run from the log or open it; warm the strategies up. Returns events folded.
        ``detail`` says why the actor (re)started; it is logged with ActorStarted."""
        folded, logged = self._fold_log()
        alerts: list[Event] = []
        if self._opening is not None:
            history, alerts = self._original_history(now_ns)
        else:
            history = self.feed.completed(self.config.symbols, now_ns - days_back * DAY_NS, now_ns)
        self._history = history
        self._warm_up(history + logged)
        if self._opening is None:
            missing = sorted(set(self.config.symbols) - {b.symbol for b in history})
            if missing:
                raise DataError(
                    f"no {self.feed.timeframe} bars for {', '.join(missing)} in the last {days_back} days"
                )
            opening = run_started(
                self.config,
                _series(history, self.config.symbols, self.feed.timeframe),
                run_id=self.run_id,
                mode="live",
                code_version=_code_version(),
                label=self._label,
            )
            self._append([opening])
            self._opening = opening
            self.cursor = max(b.ts for b in history)
        seen = f"{len(history)} warm-up bars and {len(logged)} logged bars"
        out: list[Event] = [
            ActorStarted(
                ts=now_ns,
                actor="portfolio",
                strategy=self.strategy.name,
                events_folded=folded,
                detail=f"{detail + '; ' if detail else ''}{seen}, resumed at bar {self.cursor}",
                pid=os.getpid(),
            )
        ]
        out += [
            ActorStarted(
                ts=now_ns,
                actor="strategy",
                symbol=actor["symbol"],
                strategy=self.strategy.name,
                detail=f"warmed on {sum(1 for b in history + logged if b.symbol == actor['symbol'])} bars",
                pid=actor["pid"],
            )
            for actor in self.strategies.actors()
        ]
        out += alerts
        self._recancel()
        out += self._resend_working_orders(now_ns)
        self._commit(out, now_ns)  # and send a new exit for what a protective's part fill left
        self.reconcile(now_ns)
        self._check_trade_updates(now_ns)
        if self._trade_logs is not None and folded:
            self.write_trade_logs(self._trade_logs)  # whole: a crash may have cut off the last write
        return folded

    def _fold_log(self) -> tuple[int, list[LiveBar]]:
        """Rebuild the portfolio from the run's events; returns how many there were and the bars the
        run received (its strategies saw them, so a restarted strategy must see them again)."""
        state, n, bars = self.session.state, 0, []
        for record in self._log.read(stream_prefix=f"run/{self.run_id}"):
            n += 1
            event = record.event
            if isinstance(event, BarReceived):
                bars.append(_live_bar(event))
                self.cursor = max(self.cursor, event.ts)
            elif isinstance(event, CycleCompleted):
                self.cycles = max(self.cycles, event.cycle)
                self.last_cycle_ts = max(self.last_cycle_ts, event.ts)
                self._cancels_in_flight = []
            elif isinstance(event, OrderCancelled) and event.reason not in UNSENT:
                self._cancels_in_flight.append(event.client_order_id)
            elif isinstance(event, RunStarted):
                self._opening = event
                self.cursor = max([self.cursor, *(fp.end_ts for fp in event.data)])
            self._note_decision(event)
            self._track_protective(event)
            self._outages = evolve_outages(self._outages, event)
            evolve(state, event)
            if self._monitor is not None:
                self._monitor.fold((event,))
        self._next = n + 1
        return n, bars

    def _original_history(self, now_ns: int) -> tuple[list[LiveBar], list[Event]]:
        """The warm-up bars the run started on (the window its RunStarted fingerprinted), and an alert
        when the broker no longer serves the same bytes (then the re-warmed indicators may differ)."""
        assert self._opening is not None
        prints = {fp.symbol: fp for fp in self._opening.data if fp.rows}
        if not prints:
            return [], []
        first = min(fp.start_ts for fp in prints.values())
        last = max(fp.end_ts for fp in prints.values())
        bars = self.feed.completed(self.config.symbols, first - 1, last + _bar_ns(self.feed.timeframe))
        bars = [b for b in bars if b.symbol in prints and _inside(b.ts, prints[b.symbol])]
        served = {s.symbol: s.fingerprint().sha256 for s in _series(bars, list(prints), self.feed.timeframe)}
        changed = sorted(s for s, fp in prints.items() if served.get(s) != fp.sha256)
        alerts: list[Event] = []
        if changed:
            alerts.append(
                Alert(
                    ts=now_ns,
                    rule="warm_up",
                    severity="warning",
                    message=f"the broker's warm-up bars for {', '.join(changed)} differ from the run's start",
                )
            )
        return bars, alerts

    def _warm_up(self, bars: list[LiveBar]) -> None:
        # Indicators only: decisions on these bars were made (or not) before this actor existed.
        self.strategies.warm(bars)
        for bar in bars:
            self.session.observe(bar.ts, bar.symbol, bar.high, bar.low, bar.close, bar.volume)
            self.session.last_close[bar.symbol] = bar.close

    def bars_seen(self, symbol: str) -> list[LiveBar]:
        """Every bar of ``symbol`` the run's strategy has been fed: the warm-up window, then the bars the
        log recorded. A replaced StrategyActor is re-warmed on exactly these."""
        logged = [_live_bar(e) for e in self._log.events(stream=bars_stream(self.run_id, symbol))]
        return [b for b in self._history if b.symbol == symbol] + logged

    def _recancel(self) -> None:
        """Cancels the log decided in the cycle a crash interrupted may never have reached the broker:
        send them again, before the working orders (an exit's sell is refused while the cancelled
        protective order still holds the shares). Cancelling an order that is already gone is a no-op."""
        for client_order_id in self._cancels_in_flight:
            self._cancel(client_order_id)
        self._cancels_in_flight = []

    def _resend_working_orders(self, now_ns: int) -> list[Event]:
        """Orders the log says are working: make sure the broker has them (a crash may have come between
        the log and the broker). A duplicate id answers the existing order, so nothing is placed twice."""
        out: list[Event] = []
        state = self.session.state
        for order in [*state.market_orders.values(), *state.protective.values()]:
            if self._guarded.get(order.symbol) and order.reason != "protective":
                sendable, settled = self._clear_protective(order, now_ns)
                out += settled  # logged by the caller with the rest, which then sends a new exit in it
                if not sendable:
                    continue
            out += self._send(_as_submitted(order, now_ns))
        return out

    def stop(self, now_ns: int, reason: str = "stop") -> None:
        """Log the stop and the final reconciliation; working orders stay at the broker."""
        self.reconcile(now_ns)
        self._append([ActorStopped(ts=now_ns, actor="portfolio", strategy=self.strategy.name, reason=reason)])
        self._log.close()

    def reconcile(self, now_ns: int) -> Reconciled:
        """Compare the folded positions with the broker's and log what differs."""
        held = self.broker.positions()
        # Alpaca names a pair's position without the slash (BTC/USD is held as BTCUSD).
        held = {s: held.get(s, held.get(s.replace("/", ""), 0.0)) for s in self.config.symbols}
        broker = {s: q for s, q in held.items() if q}
        local = {s: p.qty for s, p in self.session.state.positions.items()}
        differences = [
            f"{s}: log {local.get(s, 0.0):g}, broker {broker.get(s, 0.0):g}"
            for s in sorted(set(broker) | set(local))
            if abs(broker.get(s, 0.0) - local.get(s, 0.0)) > qty_tolerance(s)
        ]
        state = self.session.state
        event = Reconciled(
            ts=now_ns,
            broker_positions=broker,
            local_positions=local,
            open_orders=sorted(
                o.client_order_id for o in [*state.market_orders.values(), *state.protective.values()]
            ),
            differences=differences,
        )
        self._append([event])
        return event

    # ------------------------------------------------------------------ one cycle

    def run_cycle(self, now_ns: int) -> CycleReport:
        """Fills, new bars, decisions, orders; then the cycle's own event."""
        started = time.perf_counter()
        self.cycles += 1
        self.last_cycle_ts = now_ns
        self._broker_answered, self._broker_errors = False, []
        events = self._collect_fills(now_ns)
        try:
            bars = self.feed.completed(self.config.symbols, self.cursor, now_ns)
        except DataError as exc:
            # The cursor stays put: the next cycle asks for everything since, so the gap is back-filled.
            # Every failed cycle says so in its CycleCompleted; the alert goes out once per outage.
            bars, skipped = [], f"feed error: {exc}"
            self._append(self._outage("feed", now_ns, failure=str(exc)))
        else:
            skipped = "" if bars else "no new bars"
            self._append(self._outage("feed", now_ns, failure=None))
        shared = getattr(self.feed, "take_market_data_outcome", None)  # the engine's shared stream
        if shared is not None:
            failure, answered = shared()
            self._append(self._outage("market_data", now_ns, failure=failure, answered=answered))
        groups = _by_timestamp(bars)
        for k, group in enumerate(groups):
            events += self._on_bars(group, trade=k == len(groups) - 1)
        self._check_trade_updates(now_ns)
        settle = getattr(self.broker, "await_orders", None)  # a trade-update stream says when to poll
        if settle is not None:
            unsent = {e.client_order_id for e in events if isinstance(e, OrderCancelled)}
            settle(
                [
                    e.client_order_id
                    for e in events
                    if isinstance(e, OrderSubmitted)
                    and e.order_type == "market"
                    and e.client_order_id not in unsent
                ]
            )
        events += self._collect_fills(now_ns)
        if not self._broker_errors:  # judged per cycle: a lookup that answers beside a re-send that
            # does not is still the outage, so the alert does not flap within one cycle
            self._append(self._outage("broker", now_ns, failure=None, answered=self._broker_answered))
        if self._monitor is not None:  # a stalled symbol is judged per cycle in which the feed answered
            events += self._alerts([], now_ns, None if skipped.startswith("feed error") else bars)
        restarted = self.strategies.take_restarts()
        self._append(
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
        self._append(
            [
                CycleCompleted(
                    ts=now_ns,
                    cycle=self.cycles,
                    duration_ms=round((time.perf_counter() - started) * 1000.0, 3),
                    symbols=list(self.config.symbols),
                    skipped=skipped,
                    broker_errors=list(self._broker_errors),
                )
            ]
        )
        changed = [e.ts for e in events if isinstance(e, PositionClosed | PositionOpened | EquityMarked)]
        if self._trade_logs is not None and changed:
            self.write_trade_logs(self._trade_logs, since=min(changed))  # the days this cycle changed
        # A session runs for days: its cycles become queryable in the SQL views as they end, not at close.
        self._log.sync_views(wait=False)
        orders = sum(1 for e in events if isinstance(e, OrderSubmitted))
        return CycleReport(self.cycles, now_ns, len(bars), len(events), orders)

    def _check_trade_updates(self, now_ns: int) -> None:
        """One ``trade_updates`` alert the first time the trade-update stream is found down (refused,
        unreachable or dropped): trading goes on by polling, which only collects fills a cycle later,
        so saying it every cycle would be noise. Not a ``broker`` alert: the broker still answers, and
        the broker outage rule would clear it at the next answered request while the stream stays down."""
        if self._stream_alerted:
            return
        trouble = getattr(self.broker, "trade_updates_trouble", None)
        why = trouble() if trouble is not None else ""
        if why:
            self._stream_alerted = True
            message = f"the trade-update stream is unavailable ({why}); polling only"
            self._append([Alert(ts=now_ns, rule="trade_updates", severity="warning", message=message)])

    def _on_bars(self, group: list[LiveBar], *, trade: bool) -> list[Event]:
        session, decided = self.session, []
        crypto = all(is_crypto(s) for s in self.config.symbols)
        # Every strategy decides before anything is logged: a strategy actor dying here leaves no half
        # timestamp in the log, and the timestamp's events are committed as one transaction below.
        sides = [self._decide(bar) for bar in group]
        for bar, (side, values, reason) in zip(group, sides, strict=True):
            received = BarReceived(
                ts=bar.ts,
                symbol=bar.symbol,
                timeframe=self.feed.timeframe,
                open=bar.open,
                high=bar.high,
                low=bar.low,
                close=bar.close,
                volume=bar.volume,
            )
            day = int(session_days(np.array([bar.ts], dtype=np.int64))[0])
            decided.append(received)
            decided += session.observe(bar.ts, bar.symbol, bar.high, bar.low, bar.close, bar.volume)
            if trade and is_crypto(bar.symbol):
                decided += self._applied(self._watch_pair(bar))
            decided += session.close_bar(
                bar.symbol, bar.ts, day, bar.close, side if trade else 0, values, reason
            )
        last = group[-1].ts
        self.cursor = max(self.cursor, last)
        ending = is_session_end(last, _bar_ns(self.feed.timeframe), crypto=crypto)
        day_start = session.state.day_start_equity  # before this timestamp's mark moves it
        decided += session.end_of_timestamp(last, session_end=ending)
        out = self._commit(decided, last)
        if self._monitor is not None:
            out += self._alerts(out, last, None, day_start=day_start, marked=ending)
        return out

    def _alerts(
        self,
        written: list[Event],
        ts: int,
        bars: list[LiveBar] | None,
        *,
        day_start: float | None = None,
        marked: bool = False,
    ) -> list[Event]:
        """The monitor's alerts after a timestamp or a cycle, logged and folded into the portfolio."""
        assert self._monitor is not None
        session = self.session
        alerts = self._monitor.after_timestamp(
            written,
            ts=ts,
            day=str(int(session_days(np.array([ts], dtype=np.int64))[0])),
            equity=session.equity,
            peak=session.peak,
            day_start_equity=session.state.day_start_equity if day_start is None else day_start,
            reported=None if bars is None else {b.symbol for b in bars},
            marked=marked,
        )
        return self._commit(self._applied(list(alerts)), ts)

    def _commit(self, events: list[Event], ts: int) -> list[Event]:
        """Log ``events`` durably, then act on them at the broker; returns them and what followed."""
        if not events:
            return []
        self._append(events)
        out = list(events)
        for event in events:
            if isinstance(event, OrderSubmitted):
                if self._guarded.get(event.symbol) and event.reason != "protective":
                    order = self.session.state.market_orders.get(event.symbol)
                    if order is None or order.client_order_id != event.client_order_id:
                        continue  # settled by an earlier event of this batch
                    sendable, settled = self._clear_protective(order, ts)
                    out += self._commit(settled, ts)
                    if not sendable:
                        continue
                out += self._commit(self._send(event), ts)
            elif isinstance(event, OrderCancelled) and event.reason not in UNSENT:
                self._cancel(event.client_order_id)
        return out

    def _send(self, order: OrderSubmitted) -> list[Event]:
        """Place ``order``; a refusal becomes an OrderRejected event (the portfolio folds it)."""
        try:
            placed = self.broker.submit(order)
        except BrokerUnreachable as exc:
            # Placed or not, nobody knows yet: the order stays working and the next cycle's lookup
            # finds it, or re-sends it under the same id (see _collect_fills).
            self._broker_errors.append(str(exc))
            return self._outage("broker", order.ts, failure=str(exc))
        except BrokerRejected as exc:
            self._broker_answered = True
            return self._applied(
                [
                    OrderRejected(
                        ts=order.ts,
                        client_order_id=order.client_order_id,
                        symbol=order.symbol,
                        reason=str(exc),
                    )
                ]
            )
        self._broker_answered = True
        self.orders_sent += 1
        if placed.refused:
            return self._applied(
                [
                    OrderRejected(
                        ts=order.ts,
                        client_order_id=order.client_order_id,
                        symbol=order.symbol,
                        reason="rejected by the broker",
                    )
                ]
            )
        return []

    def _outage(
        self, rule: OutageRule, ts: int, *, failure: str | None, answered: bool = True
    ) -> list[Event]:
        """The ``feed``/``broker`` alert (or its clearance) an outcome calls for, given what the log
        raised before (events/monitor.py); folded at once, so a second failure in the same batch
        finds the first one's alert."""
        alerts = decide_outage(self._outages, rule, ts, failure=failure, answered=answered)
        for alert in alerts:
            self._outages = evolve_outages(self._outages, alert)
        return list(alerts)

    def _cancel(self, client_order_id: str) -> None:
        with contextlib.suppress(BrokerRejected):  # already filled or gone: the next cycle sees which
            self.broker.cancel(client_order_id)

    def _collect_fills(self, now_ns: int) -> list[Event]:
        """Turn what the broker executed into Fill events and their consequences (positions, the
        protective order after an entry), decided by the same core as the simulated broker."""
        state, out = self.session.state, []
        for order in [*state.market_orders.values(), *state.protective.values()]:
            if self._guarded.get(order.symbol) and order.reason != "protective":
                # Its protective's cancel is not confirmed yet: never send it blind (see _clear_protective).
                sendable, settled = self._clear_protective(order, now_ns)
                out += self._commit(settled, now_ns)
                if not sendable:
                    continue
            try:
                seen = self.broker.order(order.client_order_id)
            except BrokerOrderNotFound:  # a submission that got no answer never arrived: send it again
                self._broker_answered = True
                out += self._commit(self._send(_as_submitted(order, now_ns)), now_ns)
                continue
            except BrokerRejected:
                continue  # unreachable for now: the next cycle asks again
            self._broker_answered = True
            if not seen.done:  # working, pending_new and pending_cancel included: wait, never re-send
                continue
            if seen.lingers:  # done for the day: booked as ended here, so it must not resume tomorrow
                self._cancel(order.client_order_id)
            if seen.filled_qty <= 0 or seen.filled_avg_price is None:
                ended: Event = (
                    OrderRejected(
                        ts=now_ns,
                        client_order_id=order.client_order_id,
                        symbol=order.symbol,
                        reason="rejected by the broker",
                    )
                    if seen.refused
                    else OrderCancelled(
                        ts=now_ns, client_order_id=order.client_order_id, symbol=order.symbol, reason="broker"
                    )
                )
                out += self._commit(self._applied([ended]), now_ns)
                continue
            fill = self._fill_of(order, seen, now_ns)
            decided = self._applied(self._protect(decide_fill(state, self.session.desk, fill)))
            if fill.side == "sell":  # e.g. an exit the broker ended part filled: sell the rest
                decided += self._sell_the_rest(fill, fill.reason)
            out += self._commit(decided, now_ns)
        return out

    def _sell_the_rest(self, fill: Fill, reason: str) -> list[Event]:
        """After ``fill`` (a sell, already applied) closed only part of its position, nothing sells the
        rest: decide a market exit for it, for ``reason`` (applied; the caller logs it before it is
        sent, like every order, so a restart re-sends it under its logged id and never twice)."""
        state = self.session.state
        if fill.symbol not in state.positions or fill.symbol in state.market_orders:
            return []  # the whole position closed, or an exit already works
        decided = decide_exit(state, ts=fill.ts, symbol=fill.symbol, reason=reason, price=fill.price)
        return self._applied(decided)

    def _fill_of(self, order: Order, seen: BrokerOrder, ts: int) -> Fill:
        """What the broker says ``order`` executed, as the Fill the log keeps."""
        assert seen.filled_avg_price is not None
        qty, commission = seen.filled_qty, 0.0
        if is_crypto(order.symbol):
            cost = self.config.cost
            maker = seen.order_type == "limit"  # a resting limit made liquidity; the rest took it
            bps = cost.maker_bps(order.symbol) if maker else cost.taker_bps(order.symbol)
            qty, commission = credited_fee(order.side, qty, seen.filled_avg_price, bps)
        return Fill(
            ts=ts,
            client_order_id=order.client_order_id,
            exec_id=f"{seen.broker_order_id}@{seen.filled_qty:g}",
            symbol=order.symbol,
            side=order.side,  # type: ignore[arg-type]
            qty=qty,
            price=seen.filled_avg_price,
            commission=commission,
            reason=_fill_reason(order, seen),
        )

    def _track_protective(self, event: Event) -> None:
        """Fold what :meth:`_clear_protective` needs from one logged event: our cancel of a symbol's
        protective order guards the exit that follows it, until that exit ends or the position closes."""
        if isinstance(event, OrderSubmitted) and event.reason == "protective":
            self._protectives[event.symbol] = event
            return
        if not isinstance(event, OrderCancelled | OrderRejected | PositionClosed):
            return
        guard = self._protectives.get(event.symbol)
        protective_id = guard.client_order_id if guard is not None else ""
        if isinstance(event, OrderCancelled) and event.client_order_id == protective_id:
            if event.reason not in UNSENT:
                self._guarded[event.symbol] = protective_id
        elif isinstance(event, PositionClosed) or event.client_order_id != protective_id:
            self._guarded.pop(event.symbol, None)

    def _clear_protective(self, exit_order: Order, ts: int) -> tuple[bool, list[Event]]:
        """Before ``exit_order`` (an exit sell that followed our cancel of the same symbol's protective
        order) goes to the broker: did the cancel win? The protective may have filled at the broker
        after this cycle's fill poll and before the cancel arrived, which the cancel's refusal does not
        say (:meth:`_cancel` ignores it); selling again then would sell twice. So the protective is read
        back until it is done (a bounded wait):

        - cancelled with nothing filled (or never placed): the exit may be sent -> ``(True, [])``;
        - filled: its Fill and what the core decides from it (the position closed at the stop or the
          target), and the exit cancelled unsent -> ``(False, events)``;
        - filled in part: its Fill and the part it closed, the exit cancelled unsent (its quantity is
          more than is left), and a new exit for the rest with the same reason, which the caller sends
          after logging it -> ``(False, events)``;
        - no answer (not asked again this cycle: the client has already retried), or still working
          after the wait: the exit stays working unsent, the ``broker`` alert goes out, and the next
          cycle asks again -> ``(False, alerts)``.

        Returns whether to send the exit, and the events to log (applied to the portfolio)."""
        symbol = exit_order.symbol
        protective_id = self._guarded[symbol]
        if protective_id in self._confirmed:
            return True, []
        seen: BrokerOrder | None = None
        failure = ""
        for attempt in range(CANCEL_CHECKS):
            if attempt:
                time.sleep(CANCEL_CHECK_WAIT_S)
            try:
                seen = self.broker.order(protective_id)
            except BrokerOrderNotFound:  # never reached the broker: nothing of it can fill
                self._broker_answered = True
                self._confirmed.add(protective_id)
                return True, []
            except (BrokerRejected, BrokerUnreachable) as exc:
                # The read already retried with backoff inside the client: asking again now would only
                # stall the cycle (every other symbol waits) while the broker is down.
                seen, failure = None, str(exc)
                break
            self._broker_answered = True
            if seen.done:
                break
        if seen is None or not seen.done:
            if not failure:
                assert seen is not None
                failure = f"the cancel of {protective_id} is not confirmed (still {seen.status})"
            self._broker_errors.append(failure)
            return False, self._outage("broker", ts, failure=failure)
        if seen.filled_qty <= 0 or seen.filled_avg_price is None:
            self._confirmed.add(protective_id)
            return True, []
        state = self.session.state
        logged = self._protectives[symbol]
        assert logged.client_order_id == protective_id  # a new protective needs a new position first
        guard = Order(logged)
        fill = self._fill_of(guard, seen, ts)
        not_sent = OrderCancelled(
            ts=ts, client_order_id=exit_order.client_order_id, symbol=symbol, reason=NOT_SENT
        )
        settled = self._applied([*decide_fill(state, self.session.desk, fill), not_sent])
        # Filled in part: the rest is sold for the reason the exit had.
        return False, settled + self._sell_the_rest(fill, exit_order.reason)

    def _protect(self, events: list[Event]) -> list[Event]:
        """A pair's protective order, as Alpaca can hold it: it takes no OCO for crypto, so the stop
        becomes a stop-limit at the broker (limit ``cost.stop_band`` below the stop, so a fast fall
        still fills) and the target is left to :meth:`_watch_pair`. The order at the broker covers a
        crash or a gap between cycles; it is logged before it is sent like every order, and re-sent
        under the same id on restart. Without a stop, nothing rests at the broker. Stocks keep the OCO."""
        out: list[Event] = []
        for event in events:
            if isinstance(event, OrderSubmitted) and event.order_type == "oco" and is_crypto(event.symbol):
                if not event.stop_price:
                    continue
                stop = _pair_price(event.stop_price)
                limit = _pair_price(stop * (1.0 - self.config.cost.stop_band))
                event = msgspec.structs.replace(
                    event, order_type="stop_limit", stop_price=stop, limit_price=limit
                )
            out.append(event)
        return out

    def _watch_pair(self, bar: LiveBar) -> list[Event]:
        """What a pair's OCO would have done, decided on a completed bar: a close at or above the
        target takes the profit; a close below the stop-limit's limit (a gap it cannot fill), or at
        or below the stop when the broker holds no stop-limit (it refused it), stops the position
        out. Either cancels the stop-limit, then sells what the log holds at market; the cancel is
        logged before it is sent, so a crash in between sends it again on restart
        (:meth:`_recancel`) before the sell is re-sent (:meth:`_resend_working_orders`)."""
        state = self.session.state
        position = state.positions.get(bar.symbol)
        if position is None or bar.symbol in state.market_orders:
            return []
        guard = state.protective.get(bar.symbol)
        if guard is None:  # no stop at the broker (none configured, or the broker refused it)
            stopped = 0 < bar.close <= position.stop
        else:
            stopped = guard.order_type == "stop_limit" and bar.close < guard.limit
        if bar.close >= position.target:
            reason = "take_profit"
        elif stopped:
            reason = "stop_loss"
        else:
            return []
        return decide_exit(state, ts=bar.ts, symbol=bar.symbol, reason=reason, price=bar.close)

    def _applied(self, events: list[Event]) -> list[Event]:
        for event in events:
            evolve(self.session.state, event)
        return events

    def _append(self, events: list[Event]) -> None:
        if events:
            self._log.append_batch(run_items(self.run_id, events, self._next))
            self._next += len(events)
            for event in events:
                self._note_decision(event)
                self._track_protective(event)

    def _note_decision(self, event: Event) -> None:
        # The newest decision, for `tape status`: a signal, a risk refusal or an order.
        if isinstance(event, Signal):
            what = f"{event.side} signal at {event.price:g}" + (f" ({event.reason})" if event.reason else "")
        elif isinstance(event, RiskRejected):
            what = f"risk rejected ({event.rule}): {event.message}"
        elif isinstance(event, OrderSubmitted):
            what = f"{event.side} {event.qty:g} {event.order_type} ({event.reason}) {event.client_order_id}"
        else:
            return
        self.last_decision = {"ts": event.ts, "symbol": event.symbol, "decision": what}

    # ------------------------------------------------------------------ projections

    def write_trade_logs(self, root: Path, since: int | None = None) -> list[Path]:
        """Write the run's part of logs/trades_<symbol>_<day>.csv and the daily summaries, from the log
        (``since``: only the days from that timestamp's on)."""
        from tape.store.backtests import replay_report
        from tape.store.trade_logs import write_trade_logs

        return write_trade_logs(replay_report(self._log, self.run_id), root, since=since)

    def status(self) -> dict[str, Any]:
        """Positions, cash, P&L and the cycle count, for `tape status`."""
        snapshot = self.session.snapshot()
        snapshot.update(
            run_id=self.run_id,
            cycles=self.cycles,
            orders_sent=self.orders_sent,
            cursor=self.cursor,
            last_cycle_ts=self.last_cycle_ts,
            last_decision=dict(self.last_decision),
        )
        return snapshot


def run_schedule(
    session: LiveSession,
    clock: Clock,
    interval_s: int,
    *,
    until_ns: int | None = None,
    max_cycles: int | None = None,
    on_cycle: Callable[[CycleReport, int], None] | None = None,
) -> int:
    """Run cycles at the scheduled times until the clock is stopped, ``until_ns`` or ``max_cycles``.
    ``on_cycle(report, next_ns)`` is told after each. Returns the number of cycles run."""
    crypto = all(is_crypto(s) for s in session.config.symbols)
    ran = 0
    while max_cycles is None or ran < max_cycles:
        due = next_run(clock.now_ns(), interval_s, crypto=crypto)
        if until_ns is not None and due > until_ns:
            break
        if not clock.sleep_until(due):
            break
        report = session.run_cycle(due)
        ran += 1
        if on_cycle is not None:
            on_cycle(report, next_run(due, interval_s, crypto=crypto))
    return ran


def _fill_reason(order: Order, seen: BrokerOrder) -> str:
    if order.reason != "protective":
        return order.reason
    return "stop_loss" if seen.order_type in ("stop", "stop_limit", "trailing_stop") else "take_profit"


def _pair_price(price: float) -> float:
    """A pair's order price as it is logged and sent: cents, or 6 decimals under a dollar (a coin at
    $0.08 rounded to cents would put its stop at or above the market)."""
    return round(price, 2 if price >= 1.0 else 6)


def _as_submitted(order: Order, ts: int) -> OrderSubmitted:
    """The submission of a working order, to send it again under its logged id."""
    limit: float | None
    stop: float | None
    if order.order_type == "stop_limit":  # a pair's protective stop: its limit bounds the stop's fill
        kind, limit, stop = "stop_limit", order.limit, order.stop
    elif order.reason == "protective":  # a stock's OCO: the limit is its take-profit
        kind = "oco"
        limit = order.target if order.target != float("inf") else None
        stop = order.stop or None
    else:
        kind, limit, stop = "market", None, None
    return OrderSubmitted(
        ts=ts,
        client_order_id=order.client_order_id,
        intent_id=order.intent_id,
        symbol=order.symbol,
        side=order.side,  # type: ignore[arg-type]
        qty=order.qty,
        order_type=kind,  # type: ignore[arg-type]
        limit_price=limit,
        stop_price=stop,
        reason=order.reason,
        strategy=order.strategy,
    )


def _inside(ts: int, fingerprint: Any) -> bool:
    return bool(fingerprint.start_ts <= ts <= fingerprint.end_ts)


def _live_bar(event: BarReceived) -> LiveBar:
    return LiveBar(event.symbol, event.ts, event.open, event.high, event.low, event.close, event.volume)


def _by_timestamp(bars: list[LiveBar]) -> list[list[LiveBar]]:
    groups: list[list[LiveBar]] = []
    for bar in bars:
        if groups and groups[-1][0].ts == bar.ts:
            groups[-1].append(bar)
        else:
            groups.append([bar])
    return groups


def _series(history: list[LiveBar], symbols: Sequence[str], timeframe: str) -> list[BarSeries]:
    out = []
    for symbol in symbols:
        rows = [b for b in history if b.symbol == symbol]
        cols = [
            np.array([getattr(b, c) for b in rows], dtype=np.float64)
            for c in ("open", "high", "low", "close", "volume")
        ]
        ts = np.array([b.ts for b in rows], dtype=np.int64)
        out.append(BarSeries.from_arrays(symbol, timeframe, ts, *cols, source="alpaca"))
    return out


def _bar_ns(timeframe: str) -> int:
    from tape.events.timeframes import timeframe_ns

    return timeframe_ns(timeframe)


def _code_version() -> str:
    from tape.store.backtests import code_version

    return code_version()
