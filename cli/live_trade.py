"""`tape trade --broker alpaca --feed alpaca`: a live (paper by default) session in the foreground.

One StrategyActor per symbol on Ray decides; the session (actors/live_session/) holds the portfolio,
talks to Alpaca and appends every decision to the log before acting on it. Ctrl-C stops it between
cycles; running the same command again resumes the same run from the log.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tape.actors.schedule import parse_interval
from tape.cli.common import console, err_console, fmt_ts, print_json, settings

if TYPE_CHECKING:
    from tape.events.backtest import BacktestConfig

_BAR_FOR_INTERVAL = {60: "1Min", 300: "5Min", 3600: "1Hour"}


def live_timeframe(interval: str) -> str:
    """The bar size a schedule trades on by default: its own when Alpaca has it, else 1-minute bars."""
    return _BAR_FOR_INTERVAL.get(parse_interval(interval), "1Min")


def ray_strategies(symbols: list[str], strategy: str, params: dict[str, Any], address: str | None) -> Any:
    """One StrategyActor per symbol on Ray (local, or the cluster at ``address``)."""
    from tape.actors.jobs import ensure_ray
    from tape.actors.strategy_pool import RayStrategies

    ensure_ray(address)
    return RayStrategies(symbols, strategy, params)


def trade_live(
    ctx: typer.Context,
    config: BacktestConfig,
    *,
    interval: str,
    days_back: int,
    cycles: int,
    address: str | None,
    json: bool,
    feed: str = "alpaca",
    trade_updates: bool = True,
    monitor: Any = None,
    on_run: Any = None,
) -> None:
    """Start or resume the live run and trade on schedule until Ctrl-C or ``cycles`` cycles.
    ``feed``: alpaca (REST bars each cycle) or alpaca-stream (minute-bar WebSocket, REST back-fill).
    ``trade_updates``: listen to Alpaca's trade-update stream. It is not part of the run id: it changes
    when fills are collected, not what is decided, so the same run resumes with it on or off.
    ``monitor`` (MonitorConfig) turns the alert rules on; ``on_run(run_id)`` hears the run's id."""
    from tape.actors.alpaca.broker import AlpacaBroker
    from tape.actors.alpaca.streaming_feed import live_feed
    from tape.actors.clock import WallClock
    from tape.actors.live_session import LiveSession, live_run_id
    from tape.events.strategies import make_strategy
    from tape.store.credentials import load_alpaca_credentials

    interval_s = parse_interval(interval)
    make_strategy(config.strategy, config.params)  # a bad name or parameter fails before any connection
    credentials = load_alpaca_credentials()
    run_id = live_run_id(config, credentials.base_url)
    clock = WallClock()
    strategies = ray_strategies(config.symbols, config.strategy, config.params, address)
    on_off = "on" if trade_updates else "off"
    updates = f"trade updates {on_off}"
    broker = AlpacaBroker(credentials, trade_updates=trade_updates)
    try:
        session = LiveSession(
            config,
            run_id=run_id,
            broker=broker,
            # The bar stream's threads are daemons: they end with this process.
            feed=live_feed(credentials, config.timeframe, streaming=feed == "alpaca-stream"),
            log_path=settings(ctx).log_path,
            strategies=strategies,
            label=f"broker=alpaca feed={feed} interval={interval} trade_updates={on_off}",
            trade_logs=Path.cwd(),
            monitor=monitor,
        )
        strategies.history = session.bars_seen  # a replaced strategy actor re-warms on what the run saw
        if on_run is not None:
            on_run(run_id)
        folded = session.start(clock.now_ns(), days_back, detail=updates)
        account = "paper" if credentials.paper else "LIVE"
        if broker.trade_updates_trouble():  # the `broker` alert in the log says why
            updates = "trade-update stream unavailable, polling only"
        err_console.print(
            f"{'resumed' if folded else 'started'} run {run_id} ({account} account, {config.timeframe} "
            f"bars every {interval}, {updates}); Ctrl-C stops between cycles"
        )
        _run_cycles(session, clock, interval_s, cycles, json)
    finally:
        broker.close()  # the trade-update stream: its loop is cancelled, so this never waits long
    _print_status(run_id, session.status(), json)


def _run_cycles(session: Any, clock: Any, interval_s: float, cycles: int, json: bool) -> None:
    """Run the schedule until Ctrl-C (which stops between cycles) or ``cycles`` cycles, then stop the
    session in the log."""
    from tape.actors.live_session import run_schedule

    def report(cycle: Any, next_ns: int) -> None:
        if not json:
            err_console.print(
                f"cycle {cycle.cycle} at {fmt_ts(cycle.ts)}: {cycle.bars} bars, {cycle.orders} orders; "
                f"next {fmt_ts(next_ns)}"
            )

    previous = signal.signal(signal.SIGINT, lambda *_: clock.stop())
    try:
        run_schedule(session, clock, interval_s, max_cycles=cycles or None, on_cycle=report)
    finally:
        signal.signal(signal.SIGINT, previous)
        session.stop(clock.now_ns(), reason="cycles" if cycles else "ctrl-c")


def _print_status(run_id: str, status: dict[str, Any], json: bool) -> None:
    """The stopped session's status: cycles, orders, P&L, cash and open positions."""
    if json:
        print_json({k: v for k, v in status.items() if k != "config"})
        return
    console.print(
        f"run {run_id}: {status['cycles']} cycles, {status['orders_sent']} orders sent, "
        f"realised P&L ${status['realized_pnl']:,.2f}, cash ${status['cash']:,.2f}"
    )
    for symbol, position in status["positions"].items():
        console.print(
            f"  {symbol}: {position['qty']:g} @ {position['entry_price']:.2f} (stop {position['stop']:.2f})"
        )
