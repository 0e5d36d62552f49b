"""`tape up`, `tape spawn`, `tape stop`, `tape status`, `tape down`: the live engine from any shell.

`tape up` starts the engine (a detached Ray actor, actors/live_engine.py) and records where it is beside
the log; the other commands find it there (actors/engine_host.py). Without a running engine they end
with one line saying so and exit 1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer

from tape.cli import options as opt
from tape.cli.common import console, err_console, fmt_ts, print_json, settings
from tape.cli.monitor_cmds import (
    AlertDailyLoss,
    AlertDrawdown,
    DegradationQuantile,
    DegradationWindow,
    StallTicks,
    monitor_config,
    with_degradation_floor,
)
from tape.events.errors import ConfigError, TapeError


def up_cmd(
    ctx: typer.Context,
    address: opt.Address = None,
    broker: Annotated[str, typer.Option("--broker", help="alpaca (paper by default).")] = "alpaca",
    feed: Annotated[
        str | None,
        typer.Option(
            "--feed",
            help="alpaca (completed bars over REST each cycle) or alpaca-stream (the minute-bar WebSocket, "
            "one connection shared by every session, REST for any window it cannot vouch for). "
            "Default: the feed of the log's last `tape up`, else alpaca.",
        ),
    ] = None,
    clock: Annotated[
        str | None,
        typer.Option(
            "--clock",
            help="wall, or broker[:POLL_S]: run cycles on the venue's clock (rehearsals on a paper venue "
            "or the test emulator whose clock moves at its own pace). "
            "Default: the clock of the log's last `tape up`, else wall.",
        ),
    ] = None,
    json: opt.Json = False,
) -> None:
    """Start the live engine (its own local Ray, or join --address) and resume the log's sessions.

    --feed and --clock not given are the ones the log's engine last ran with (the log records them)."""
    from tape.actors import engine_host as host
    from tape.actors.clock import parse_clock
    from tape.actors.engine_spec import EngineOptions
    from tape.actors.market_data import FEEDS
    from tape.actors.notify_channels import channels_from_env
    from tape.store.credentials import load_alpaca_credentials, load_env
    from tape.store.log import EventLog

    if broker != "alpaca" or (feed is not None and feed not in FEEDS):
        raise ConfigError(
            f"the engine trades with --broker alpaca --feed {'|'.join(FEEDS)}; offline sessions run in the "
            "foreground with `tape trade ... --broker sim --feed replay`"
        )
    if clock is not None:
        parse_clock(clock)
    load_alpaca_credentials()  # missing credentials fail here, naming the variable
    channels_from_env(load_env())  # so does a bad notification setting (the sessions notify with them)
    log_path = settings(ctx).log_path.resolve()
    EventLog.create(log_path).close()  # a foreign or damaged log fails here, before any process starts
    if _already_up(log_path, json):
        return
    chosen = engine_choices(log_path, feed=feed, clock=clock)
    dotenv = Path(".env").resolve()
    if address:
        state = host.EngineState(address=address, namespace=host.namespace_for(log_path), log=str(log_path))
    else:
        state = host.start_head(log_path, dict(os.environ))
    options = EngineOptions(
        log_path=str(log_path),
        workdir=str(Path.cwd().resolve()),
        dotenv=str(dotenv) if dotenv.is_file() else "",
        broker=broker,
        feed=chosen["feed"].value,
        clock=chosen["clock"].value,
        namespace=state.namespace,
    )
    try:
        handle = host.create_engine(state, options)
        info = host.call(handle, "ready", timeout=300)
    except BaseException:
        _clean_up_stale(state)
        raise
    host.write_state(log_path, host.EngineState(**{**_fields(state), "engine_pid": info["pid"]}))
    how = ", ".join(f"{name} {c.value} ({c.source})" for name, c in chosen.items())
    sources = {name: c.source for name, c in chosen.items()}
    _say(
        json,
        {"status": "started", **info, "address": state.address, "chosen": sources},
        f"engine up with {how}",
    )


def _already_up(log_path: Path, json: bool) -> bool:
    """Whether this log's engine is running (then say so); a stale record of a dead one is cleaned up."""
    from tape.actors import engine_host as host

    if not host.state_path(log_path).is_file():
        return False
    state = host.read_state(log_path)
    try:
        handle = host.engine_handle(state)
    except host.EngineNotRunning:
        _clean_up_stale(state)
        return False
    info = host.call(handle, "ready", timeout=300)
    # Options are fixed for the engine's life (Ray restarts it with them): `tape down` to change.
    headline = f"engine already running (--feed {info.get('feed', 'alpaca')})"
    _say(json, {"status": "running", **info, "address": state.address}, headline)
    return True


class EngineChoice(NamedTuple):
    """An engine option's value and where it came from: "given", "as last time" or "default"."""

    value: str
    source: str


def engine_choices(log_path: Path, *, feed: str | None, clock: str | None) -> dict[str, EngineChoice]:
    """--feed and --clock as given, else as the log's engine last ran with (its ``engine_configured``
    event), else the defaults: a plain `tape up` after `tape down` runs the engine as it was."""
    from tape.actors.engine_spec import DEFAULT_CLOCK, DEFAULT_FEED
    from tape.actors.live_engine import last_configured
    from tape.store.log import EventLog

    with EventLog.open(log_path, readonly=True) as log:
        last = last_configured(log)

    def choose(given: str | None, remembered: str | None, default: str) -> EngineChoice:
        if given is not None:
            return EngineChoice(given, "given")
        if remembered is not None:
            return EngineChoice(remembered, "as last time")
        return EngineChoice(default, "default")

    return {
        "feed": choose(feed, None if last is None else last.feed, DEFAULT_FEED),
        "clock": choose(clock, None if last is None else last.clock, DEFAULT_CLOCK),
    }


def _fields(state: Any) -> dict[str, Any]:
    return {f: getattr(state, f) for f in state.__struct_fields__}


def _clean_up_stale(state: Any) -> None:
    """Forget an engine that is gone; stop a head we started for it."""
    from tape.actors import engine_host as host

    host.disconnect()
    if state.head_pid:
        host.stop_head(state.head_pid)
        host.remove_temp_dir(state)
    host.forget_state(Path(state.log))


def _say(json: bool, info: dict[str, Any], headline: str) -> None:
    if json:
        print_json(info)
        return
    resumed = ", ".join(info.get("resumed", [])) or "none"
    console.print(f"{headline}: pid {info['pid']} on Ray at {info['address']}; sessions resumed: {resumed}")


@opt.run_options(live=True)
def spawn_cmd(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="The symbol to trade (AAPL, BTC/USD).")],
    strategy: Annotated[str, typer.Argument(help="Strategy name (see `tape strategies`).")],
    param: opt.Params = None,
    interval: Annotated[
        str, typer.Option("--interval", help="Run a cycle every 30s, 5m, 1h ... inside sessions.")
    ] = "5m",
    timeframe: Annotated[str, typer.Option("--timeframe", help="Bar size (default: from --interval).")] = "",
    days_back: Annotated[
        int, typer.Option("--days-back", min=1, help="Days of history to warm the strategy up.")
    ] = 5,
    cash: opt.Cash = 100_000.0,
    trade_updates: opt.TradeUpdates = True,
    alert_drawdown: AlertDrawdown = 10.0,
    alert_daily_loss: AlertDailyLoss = None,
    degradation_window: DegradationWindow = 20,
    degradation_quantile: DegradationQuantile = 5.0,
    stall_ticks: StallTicks = 3,
    json: opt.Json = False,
    *,
    options: opt.RunOptions,
) -> None:
    """Start trading SYMBOL with STRATEGY in the running engine (resumes the run if it traded before)."""
    from tape.actors import engine_host as host
    from tape.actors.engine_spec import SessionSpec
    from tape.actors.jobs import shipped_code
    from tape.actors.schedule import parse_interval
    from tape.cli.live_trade import live_timeframe
    from tape.events.strategies import make_strategy

    parse_interval(interval)
    thresholds = monitor_config(
        alert_drawdown,
        alert_daily_loss,
        options["max_daily_loss"],
        degradation_window,
        degradation_quantile,
        stall_ticks,
    )
    config = opt.build_config(
        [symbol],
        strategy,
        param,
        None,
        None,
        cash,
        timeframe=timeframe or live_timeframe(interval),
        cost=options.cost(),
        risk=options.risk(),
    )
    made = make_strategy(config.strategy, config.params)  # a bad name or parameter fails before the engine
    if made.output == "weights":
        raise ConfigError(
            "a portfolio strategy trades with tape trade --broker sim --feed replay in this version"
        )
    log_path = settings(ctx).log_path
    spec = SessionSpec(
        symbol=config.symbols[0],
        strategy=strategy,
        interval=interval,
        days_back=days_back,
        config=config,
        trade_updates=trade_updates,  # remembered in the log: a resumed session listens (or not) alike
        monitor=with_degradation_floor(log_path, config, thresholds),  # remembered alike
        code=shipped_code(config),  # a user's strategy source goes to the engine, not a file path
    )
    handle = host.engine_handle(host.read_state(log_path))
    result = host.call(handle, "spawn", spec)
    if json:
        print_json(result)
        return
    how = "resumed run" if result["resumed"] else "new run"
    console.print(
        f"spawned {spec.symbol} {strategy}: {how} {result['run_id']}, a cycle every {interval}, "
        f"trade updates {'on' if trade_updates else 'off'}"
    )


def stop_cmd(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="The session's symbol.")],
    strategy: Annotated[str, typer.Argument(help="The session's strategy.")],
    json: opt.Json = False,
) -> None:
    """Stop one session after its cycle in flight; its run stays in the log (`tape spawn` resumes it)."""
    from tape.actors import engine_host as host

    handle = host.engine_handle(host.read_state(settings(ctx).log_path))
    result = host.call(handle, "stop", symbol.strip().upper(), strategy)
    if json:
        print_json(result)
        return
    console.print(f"stopped {symbol.upper()} {strategy}: run {result['run_id']}, {result['cycles']} cycles")


def status_cmd(
    ctx: typer.Context,
    run: Annotated[
        str | None,
        typer.Option("--run", help="One run from the log (id or unique prefix) instead of the engine."),
    ] = None,
    json: opt.Json = False,
) -> None:
    """Engine sessions: actors and their health, positions, P&L, last decision, next run.

    Without a running engine: the newest trading session folded from the log (as `tape watch` shows it)."""
    from tape.actors import engine_host as host
    from tape.cli.status_cmds import print_run_status

    log_path = settings(ctx).log_path
    if run is not None:
        print_run_status(log_path, run, json=json)
        return
    try:
        state = host.read_state(log_path)
    except host.EngineNotRunning as no_engine:
        try:
            print_run_status(log_path, None, json=json, note=f"{no_engine}; from the log:")
        except TapeError as nothing:
            raise host.EngineNotRunning(f"{no_engine}, and {nothing}") from None
        return
    handle = host.engine_handle(state)
    status = host.call(handle, "status", timeout=60)
    if json:
        print_json(status)
        return
    engine = status["engine"]
    console.print(
        f"engine pid {engine['pid']} · clock {engine['clock']} ({fmt_ts(engine['now'])}) · "
        f"restarts {engine['restarts']} · {len(status['sessions'])} sessions"
    )
    _render_market_data(engine["feed"], status.get("market_data"))
    for s in status["sessions"]:
        _render_session(s, engine.get("notify", []))


def _render_market_data(feed: str, actor: dict[str, Any] | None) -> None:
    if actor is None:
        console.print(f"feed {feed}: completed bars over REST each cycle")
        return
    if not actor["alive"]:
        err_console.print(
            f"feed {feed}: the market-data actor is down ({actor.get('error', '')}); REST meanwhile"
        )
        return
    windows = actor["windows"]
    console.print(
        f"feed {feed}: {'connected' if actor['connected'] else 'not connected'} · "
        f"{', '.join(actor['symbols']) or 'no symbols'} · windows {windows['stream']} from the stream, "
        f"{windows['rest']} over REST · {actor['drops']} drops · market-data actor pid {actor['pid']} "
        f"({actor['restarts']} restarts)"
    )


def _render_notifications(health: dict[str, Any], channels: list[str]) -> None:
    """One line: each channel's deliveries for the session (or that none is configured)."""
    delivered = health.get("channels", {})
    if not channels and not delivered:
        console.print("  notifications: off (no channel configured where `tape up` ran)")
        return
    notes = [
        f"{name} {c['sent']} sent, {c['failed_attempts']} failed attempts, {c['given_up']} undelivered"
        + (f" (last error: {c['last_error']})" if c["given_up"] else "")
        for name, c in delivered.items()
    ] + [f"{name} none yet" for name in channels if name not in delivered]
    line = "  notifications: " + "; ".join(notes)
    (console if health.get("ok", True) else err_console).print(line)


def _render_session(s: dict[str, Any], notify: list[str]) -> None:
    next_run = fmt_ts(s["next_run"]) if s["next_run"] else "-"
    last = fmt_ts(s["last_cycle"]) if s["last_cycle"] else "-"
    console.print(
        f"[bold]{s['symbol']} {s['strategy']}[/bold] {s['state']} · run {s['run_id']} · "
        f"every {s['interval']} · trade updates {'on' if s.get('trade_updates', True) else 'off'} · "
        f"next {next_run} · last {last} · {s['cycles']} cycles · {s['orders_sent']} orders · "
        f"{s['restarts']} restarts"
    )
    actors = "; ".join(
        f"{a['actor']}{' ' + a['symbol'] if a.get('symbol') else ''} pid {a['pid']} "
        f"{'alive' if a['alive'] else 'down'} ({a['restarts']} restarts)"
        for a in s["actors"]
    )
    console.print(f"  actors: {actors}")
    money = f"realised ${s['realized_pnl']:,.2f}, unrealised ${s['unrealized_pnl']:,.2f}"
    if s["cash"] is not None:
        money += f", cash ${s['cash']:,.2f}, equity ${s['equity']:,.2f}"
    console.print(f"  P&L: {money}")
    for symbol, p in s["positions"].items():
        console.print(
            f"  {symbol}: {p['qty']:g} @ {p['entry_price']:.2f} (last {p['last'] or 0:.2f}, "
            f"unrealised ${p['unrealized_pnl']:,.2f}, stop {p['stop']:.2f})"
        )
    decision = s["last_decision"]
    if decision:
        console.print(
            f"  last decision {fmt_ts(decision['ts'])}: {decision['symbol']} {decision['decision']}"
        )
    if s["last_error"]:
        err_console.print(f"  last error: {s['last_error']}")
    _render_notifications(s.get("notifications") or {}, notify)
    feed = s.get("feed") or {}
    if feed:
        console.print(
            f"  feed: {feed['stream']} windows from the stream, {feed['rest']} over REST, "
            f"{feed['actor_down']} over REST while the market-data actor was down"
        )


def down_cmd(ctx: typer.Context, json: opt.Json = False) -> None:
    """Stop the engine gracefully: no new orders, every session logs its stop, then the Ray head goes.

    Only a Ray head `tape up` started is stopped. Spawned sessions resume with the next `tape up`."""
    from tape.actors import engine_host as host

    log_path = settings(ctx).log_path
    state = host.read_state(log_path)
    stopped: list[str] = []
    try:
        handle = host.engine_handle(state)
    except host.EngineNotRunning:
        handle = None
    if handle is not None:
        stopped = host.call(handle, "shutdown", timeout=600)["stopped"]
        host.kill_engine(handle)
    host.disconnect()
    if state.head_pid:
        host.stop_head(state.head_pid)
        host.remove_temp_dir(state)
    host.forget_state(log_path)
    if json:
        print_json({"stopped": stopped})
        return
    console.print(
        f"engine down; stopped {', '.join(stopped) or 'no sessions'} (they resume with the next `tape up`)"
    )
