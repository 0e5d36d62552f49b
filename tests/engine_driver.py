"""Drives a `tape up` engine against the local Alpaca emulator, in step with the emulator's clock.

The engine runs with ``--clock broker:0.02``: it runs a cycle when the *emulator's* clock says one is
due. The test moves that clock (and the prices) to each scheduled time and waits until every session
has logged the cycle, so the engine trades exactly the days test_live.py's sessions trade, in seconds.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import msgspec

from tape.actors.alpaca.broker import AlpacaBroker
from tape.actors.alpaca.feed import AlpacaBarFeed
from tape.actors.clock import SimulatedClock
from tape.actors.live_session import LiveSession, run_schedule
from tape.actors.schedule import next_run, parse_interval
from tape.events.backtest import BacktestConfig
from tape.store.credentials import AlpacaCredentials
from tape.store.log import EventLog
from tests.alpaca_emulator import AlpacaEmulator
from tests.conftest import TapeRunner
from tests.test_live import Market, _emulator_env, _ns
from tests.test_live_faults import StreamingMarket

CYCLE_TIMEOUT_S = 120.0


class EngineDriver:
    """One engine on one log, its sessions' runs, and the emulator's market."""

    def __init__(
        self,
        tape: TapeRunner,
        emulator: AlpacaEmulator,
        tmp_path: Path,
        begin: str,
        *,
        streaming: bool = False,
    ) -> None:
        """``streaming``: the market also sends its minutes on the WebSocket as they close, and the
        engine is told where the emulator's streams are (for `tape up --feed alpaca-stream`)."""
        self.tape, self.emulator, self.tmp_path = tape, emulator, tmp_path
        self.market = StreamingMarket(emulator) if streaming else Market(emulator)
        self.begin = self.now = _ns(begin)
        self.market.advance(self.now)
        self.env = _emulator_env(emulator)
        if streaming:
            self.env["ALPACA_STREAM_URL"] = emulator.stream_base_url
        self.log_path = tmp_path / "tape.db"
        self.runs: dict[str, str] = {}  # symbol -> run id

    def run(self, *args: str, check: bool = True) -> Any:
        result = self.tape(*args, env=self.env, timeout=300)
        if check:
            assert result.returncode == 0, f"tape {' '.join(args)}: {result.stderr}"
        return result

    def up(self, *extra: str) -> Any:
        return self.run("up", "--clock", "broker:0.02", *extra)

    def spawn(self, symbol: str, *extra: str) -> str:
        args = ("spawn", symbol, "sma_cross", "--days-back", "3", "-p", "short=3", "-p", "long=8")
        out = json.loads(self.run(*args, *extra, "--json").stdout)
        self.runs[symbol] = out["run_id"]
        return str(out["run_id"])

    def status(self) -> dict[str, Any]:
        return json.loads(self.run("status", "--json").stdout)  # type: ignore[no-any-return]

    def down(self) -> Any:
        return self.run("down")

    def kill_everything(self) -> None:
        """Teardown after a failed test: stop the engine's head (only ours) if it is still up."""
        from tape.actors import engine_host

        state_file = engine_host.state_path(self.log_path)
        if state_file.is_file():
            state = engine_host.read_state(self.log_path)
            if state.head_pid:
                engine_host.stop_head(state.head_pid, grace_s=2.0)
                engine_host.remove_temp_dir(state)

    # ------------------------------------------------------------------ time

    def next_cycle(self) -> int:
        return next_run(self.now, 300)

    def advance(self, ts: int) -> None:
        """Move the emulator's clock and prices to ``ts`` (the engine notices within 20 ms)."""
        self.now = ts
        self.market.advance(ts)

    def wait_for_cycle(self, ts: int, symbols: list[str] | None = None) -> None:
        """Until every session (or those of ``symbols``) has logged a cycle at or after ``ts``."""
        wanted = [self.runs[s] for s in (symbols or list(self.runs))]
        deadline = time.monotonic() + CYCLE_TIMEOUT_S
        with EventLog.open(self.log_path, readonly=True) as log:
            while True:
                done = [self.last_cycle(log, run) >= ts for run in wanted]
                if all(done):
                    return
                assert time.monotonic() < deadline, f"no cycle at {ts} within {CYCLE_TIMEOUT_S:g} s"
                time.sleep(0.02)  # polling the log: the engine is another process

    def step(self, symbols: list[str] | None = None) -> int:
        """Advance to the next scheduled cycle and wait until every session (of ``symbols``) ran it."""
        ts = self.next_cycle()
        self.advance(ts)
        self.wait_for_cycle(ts, symbols)
        return ts

    @staticmethod
    def last_cycle(log: EventLog, run_id: str) -> int:
        rows = log.query(
            "SELECT max(ts) FROM events WHERE stream = ? AND kind = 'cycle_completed'", (f"run/{run_id}",)
        )
        return int(rows[0][0] or 0)

    # ------------------------------------------------------------------ the log

    def events(self, prefix: str, kind: str | None = None) -> list[Any]:
        with EventLog.open(self.log_path, readonly=True) as log:
            return list(log.read(stream_prefix=prefix, kinds=[kind] if kind else None))  # with seq


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, timeout_s: float = 30.0) -> bool:
    """Whether process ``pid`` ends within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling the process table: the pid is not our child
    return True


# ---------------------------------------------------------------------- the same session on REST

DECISION_KINDS = (
    "bar",
    "signal",
    "order_intent",
    "risk_rejected",
    "order_submitted",
    "fill",
    "position_opened",
    "position_closed",
)
RUN_DERIVED = ("client_order_id", "intent_id", "exec_id")  # ids made from the run id or the broker's


def decisions(log_path: Path, run_id: str) -> list[tuple[str, dict[str, Any]]]:
    """What a run saw and decided, in order: its bars, signals, intents, risk refusals, orders, fills
    and positions, without the ids that differ between two runs of the same decisions."""
    with EventLog.open(log_path, readonly=True) as log:
        return [
            (r.kind, {k: v for k, v in msgspec.structs.asdict(r.event).items() if k not in RUN_DERIVED})
            for r in log.read(stream_prefix=f"run/{run_id}", kinds=DECISION_KINDS)
        ]


def rest_reference(engine: EngineDriver, symbol: str, until_ns: int) -> list[tuple[str, dict[str, Any]]]:
    """The engine's ``symbol`` session decided again in this process, on the REST feed (the LiveSession
    `tape trade --feed alpaca` runs), against a fresh emulator with the same market, cycle by cycle up
    to ``until_ns``: what the engine must have decided, whichever feed served its windows."""
    spawned = [r.event for r in engine.events("engine", "session_spawned") if r.event.symbol == symbol][-1]
    config = msgspec.convert(spawned.config, BacktestConfig)
    path = engine.tmp_path / f"reference-{symbol.replace('/', '-')}.db"
    with AlpacaEmulator() as emulator:
        market = Market(emulator)
        credentials = AlpacaCredentials(
            api_key=emulator.key_id,
            secret_key=emulator.secret,
            base_url=emulator.trading_url,
            data_url=emulator.data_url,
        )
        clock = SimulatedClock(spawned.ts, on_advance=market.advance)
        market.advance(spawned.ts)
        session = LiveSession(
            config,
            run_id="reference",
            broker=AlpacaBroker(credentials, retry_wait_seconds=0),
            feed=AlpacaBarFeed(credentials, config.timeframe, retry_wait_seconds=0),
            log_path=path,
        )
        session.start(clock.now_ns(), days_back=spawned.days_back)
        run_schedule(session, clock, parse_interval(spawned.interval), until_ns=until_ns)
        session.stop(clock.now_ns())
    return decisions(path, "reference")
