"""`tape up / spawn / status / stop / down` from other shells (subprocesses) against a running engine.

The engine trades against the local Alpaca emulator on the emulator's clock (tests/engine_driver.py):
2024-07-03, a half day, in 5-minute cycles.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tape.actors import engine_host
from tape.events.portfolio_state import PortfolioState, evolve
from tape.events.schema import OrderSubmitted, RiskRejected, Signal
from tape.store.log import EventLog
from tests.alpaca_emulator import AlpacaEmulator
from tests.conftest import TapeRunner, assert_clean_failure
from tests.engine_driver import EngineDriver, pid_alive, wait_gone

LAST_CYCLE_BEFORE_STOP = "2024-07-03 11:00"


def _folded(log_path: Path, run_id: str) -> PortfolioState:
    state = PortfolioState(run_id, 100_000.0)
    with EventLog.open(log_path, readonly=True) as log:
        for record in log.read(stream_prefix=f"run/{run_id}/portfolio"):
            evolve(state, record.event)
    return state


@pytest.fixture
def engine(tape: TapeRunner, alpaca_emulator: AlpacaEmulator, tmp_path: Path):  # type: ignore[no-untyped-def]
    driver = EngineDriver(tape, alpaca_emulator, tmp_path, begin="2024-07-03 09:00")
    yield driver
    driver.kill_everything()


def test_commands_without_a_running_engine_say_so_in_one_line(engine: EngineDriver) -> None:
    for args in (("status",), ("spawn", "AAPL", "sma_cross"), ("stop", "AAPL", "sma_cross"), ("down",)):
        assert_clean_failure(engine.run(*args, check=False), "no engine is running")


def test_spawn_status_stop_and_down_from_another_shell_drive_the_running_engine(engine: EngineDriver) -> None:
    up = engine.up()
    assert "engine up with feed alpaca (default), clock broker:0.02 (given)" in up.stdout
    head = engine_host.read_state(engine.log_path)
    assert head.address.startswith("127.0.0.1:")
    for pid in engine_host._session_members(head.head_pid):  # Ray's own processes: loopback only
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        addresses = [
            a.split("=", 1)[1] for a in command if a.startswith(("--node-ip-address=", "--node_ip_address="))
        ]
        assert set(addresses) <= {"127.0.0.1"}, command
    again = engine.up()  # a second `tape up` finds the running engine instead of starting another
    assert "already running" in again.stdout
    aapl, msft = engine.spawn("AAPL"), engine.spawn("MSFT")
    assert aapl != msft
    assert_clean_failure(
        engine.run("spawn", "AAPL", "sma_cross", "-p", "short=3", "-p", "long=8", check=False),
        "already running",
    )

    while engine.now < engine_ns(LAST_CYCLE_BEFORE_STOP):
        last = engine.step()
    status = engine.status()
    sessions = {s["symbol"]: s for s in status["sessions"]}
    assert set(sessions) == {"AAPL", "MSFT"} and status["engine"]["now"] == last
    orders = 0
    for symbol, run_id in engine.runs.items():
        s = sessions[symbol]
        assert (s["run_id"], s["state"], s["last_cycle"]) == (run_id, "running", last)
        assert s["next_run"] == engine.next_cycle()
        assert [a["actor"] for a in s["actors"]] == ["portfolio", "strategy"]
        assert all(a["alive"] and pid_alive(a["pid"]) and a["restarts"] == 0 for a in s["actors"])
        cycles = engine.events(f"run/{run_id}", "cycle_completed")
        assert s["cycles"] == len(cycles) == 19  # 09:30 .. 11:00 every five minutes
        state = _folded(engine.log_path, run_id)
        assert {k: p["qty"] for k, p in s["positions"].items()} == {
            k: p.qty for k, p in state.positions.items()
        }
        assert {k: p["qty"] for k, p in s["positions"].items()} == {
            k: q for k, q in engine.emulator.positions.items() if q and k == symbol
        }
        closed = engine.events(f"run/{run_id}", "position_closed")
        assert s["realized_pnl"] == pytest.approx(sum(r.event.net_pnl for r in closed), abs=0.01)
        decisions = [
            r.event
            for r in engine.events(f"run/{run_id}")
            if isinstance(r.event, Signal | RiskRejected | OrderSubmitted)
        ]
        assert decisions and s["last_decision"]["ts"] == decisions[-1].ts
        orders += s["orders_sent"]
    assert orders > 0  # the sessions traded: the status is about real positions and P&L
    _assert_trade_logs_hold_every_session(engine)
    human = engine.run("status").stdout
    assert (
        "AAPL sma_cross running" in human and "MSFT sma_cross running" in human and "last decision" in human
    )

    aapl_pids = [a["pid"] for a in sessions["AAPL"]["actors"]]
    stopped = engine.run("stop", "AAPL", "sma_cross")
    assert f"run {aapl}" in stopped.stdout
    assert all(wait_gone(pid) for pid in aapl_pids)
    assert [s["symbol"] for s in engine.status()["sessions"]] == ["MSFT"]
    assert [r.event.reason for r in engine.events(f"run/{aapl}", "actor_stopped")] == ["tape stop"]
    assert [r.event.run_id for r in engine.events("engine", "session_stopped")] == [aapl]
    for _ in range(2):
        last = engine.step(["MSFT"])  # MSFT trades on; AAPL's run has no new cycles
    with EventLog.open(engine.log_path, readonly=True) as log:
        assert EngineDriver.last_cycle(log, msft) == last
        assert EngineDriver.last_cycle(log, aapl) < last

    state = engine_host.read_state(engine.log_path)
    down = engine.down()
    assert "stopped MSFT sma_cross" in down.stdout
    assert not engine_host.state_path(engine.log_path).exists()
    assert wait_gone(state.head_pid, 10) and wait_gone(state.engine_pid, 10)
    after = engine.run("status", "--json")  # no engine: the newest session, folded from the log
    assert "no engine is running" in after.stderr
    assert json.loads(after.stdout)["engine"] is None and json.loads(after.stdout)["run_id"] == msft
    assert engine.events(f"run/{msft}", "actor_stopped")[-1].event.reason == "tape down"

    # The next `tape up` resumes what was spawned and not stopped: MSFT, from the log.
    assert "sessions resumed: MSFT sma_cross" in engine.up().stdout
    last = engine.step(["MSFT"])
    assert [s["symbol"] for s in engine.status()["sessions"]] == ["MSFT"]
    with EventLog.open(engine.log_path, readonly=True) as log:
        assert EngineDriver.last_cycle(log, msft) == last
    resumed = engine.events(f"run/{msft}", "actor_started")[-2].event  # portfolio, then its strategy
    assert resumed.actor == "portfolio" and resumed.events_folded > 0 and "resumed" in resumed.detail
    engine.down()
    assert engine.run("verify", check=False).returncode == 0


def _assert_trade_logs_hold_every_session(engine: EngineDriver) -> None:
    """The sessions share logs/ under the directory of `tape up`: each one's closes are its rows of the
    trade CSVs (one session's writes never drop another's)."""
    logs = engine.tmp_path / "logs"
    rows = [r for path in sorted(logs.glob("trades_*.csv")) for r in csv.DictReader(path.open())]
    for run_id in engine.runs.values():
        closed = [r.event for r in engine.events(f"run/{run_id}", "position_closed")]
        mine = [r for r in rows if r["run_id"] == run_id]
        assert [float(r["pnl"]) for r in mine] == [round(c.net_pnl, 2) for c in closed]
    assert rows  # a session closed trades by then


def engine_ns(text: str) -> int:
    from tests.test_live import _ns

    return _ns(text)


def test_no_trade_updates_is_the_same_run_and_is_remembered_across_down_and_up(engine: EngineDriver) -> None:
    engine.up()
    listened = engine.emulator.stream_connections
    run = engine.spawn("AAPL")  # the trade-update stream is on by default: the session listens
    assert engine.emulator.stream_connections["trading"] == listened["trading"] + 1
    engine.run("stop", "AAPL", "sma_cross")
    assert engine.spawn("AAPL", "--no-trade-updates") == run  # how fills are heard is not part of the run
    engine.down()
    engine.up()  # resumes AAPL as it was last spawned: without the stream
    assert [(s["symbol"], s["trade_updates"]) for s in engine.status()["sessions"]] == [("AAPL", False)]
    engine.down()
    assert engine.emulator.stream_connections["trading"] == listened["trading"] + 1  # never again
    starts = [
        r.event.detail for r in engine.events(f"run/{run}", "actor_started") if r.event.actor == "portfolio"
    ]
    assert [d.split("; ")[:2] for d in starts] == [
        ["spawned", "trade updates on"],
        ["spawned", "trade updates off"],
        ["resumed by the engine", "trade updates off"],
    ]
    assert engine.events(f"run/{run}", "run_started")[0].event.label.endswith("trade_updates=on")


def test_a_pair_spawned_with_the_crypto_fee_options_trades_with_them(engine: EngineDriver) -> None:
    engine.emulator.add_bars("BTC/USD", engine.market.rows["AAPL"])  # its warm-up needs bars
    engine.up()
    engine.spawn("BTC/USD", "--fee-bps", "10", "--maker-fee-bps", "5", "--stop-band-bps", "50")
    spawned = engine.events("engine", "session_spawned")[-1].event
    cost = spawned.config["cost"]
    assert (cost["fee_bps"], cost["maker_fee_bps"], cost["stop_band_bps"]) == (10.0, 5.0, 50.0)
    engine.down()


def test_a_stock_spawned_without_the_fee_options_keeps_the_config_it_had(engine: EngineDriver) -> None:
    engine.up()
    engine.spawn("AAPL")
    spawned = engine.events("engine", "session_spawned")[-1].event
    assert spawned.config["cost"] == {"slippage_bps": 5.0, "commission": 2.5}  # unset: not in the run id
    engine.down()
