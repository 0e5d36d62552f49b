"""`tape up --feed alpaca-stream`: the engine's sessions share one market-data WebSocket connection.

The engine runs against the local Alpaca emulator on the emulator's clock (tests/engine_driver.py), and
the emulator sends each minute on the stream as it closes. Whatever a window's source (the stream, REST
because the stream could not vouch for it, REST because the market-data actor was down), every session
must decide exactly what the same session decides on the REST feed (``rest_reference``).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tape.actors import engine_host
from tests.alpaca_emulator import AlpacaEmulator
from tests.conftest import TapeRunner, assert_clean_failure
from tests.engine_driver import EngineDriver, decisions, pid_alive, rest_reference, wait_gone
from tests.test_live import _ns
from tests.test_live_faults import wait_for

FIVE_MINUTES = 300 * 10**9
SESSIONS = {"AAPL": "5Min", "MSFT": "1Min"}  # two bar sizes off the one stream of minutes


@pytest.fixture
def engine(tape: TapeRunner, alpaca_emulator: AlpacaEmulator, tmp_path: Path):  # type: ignore[no-untyped-def]
    driver = EngineDriver(tape, alpaca_emulator, tmp_path, begin="2024-07-03 09:00", streaming=True)
    yield driver
    driver.kill_everything()


def _start(engine: EngineDriver, symbols: list[str]) -> None:
    """A streaming engine with a session per symbol; each trades its own slice of the account."""
    engine.up("--feed", "alpaca-stream")
    for symbol in symbols:
        engine.spawn(symbol, "--timeframe", SESSIONS[symbol], "--cash", "40000")


def _run_until(engine: EngineDriver, until: str) -> int:
    last = 0
    while engine.now < _ns(until):
        last = engine.step()
    return last


def _feeds(engine: EngineDriver) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """The market-data actor's status and each session's windows by source, from `tape status`."""
    status = engine.status()
    return status["market_data"], {s["symbol"]: s["feed"] for s in status["sessions"]}


def _assert_decided_as_on_rest(engine: EngineDriver, last: int) -> None:
    kinds: list[str] = []
    for symbol, run_id in engine.runs.items():
        got = decisions(engine.log_path, run_id)
        assert got == rest_reference(engine, symbol, last), symbol
        kinds += [kind for kind, _ in got]
    assert "bar" in kinds and "order_submitted" in kinds  # the sessions traded: decisions, not silence


def _stop(engine: EngineDriver, symbol: str, strategy: str = "sma_cross") -> None:
    engine.run("stop", symbol, strategy)


def _data_connections_open(emulator: AlpacaEmulator) -> int:
    return sum(1 for s in list(emulator.streams.hub.sessions) if s.kind == "data")


def test_an_unknown_engine_feed_is_one_clear_message_and_starts_nothing(engine: EngineDriver) -> None:
    assert_clean_failure(engine.run("up", "--feed", "replay", check=False), "--feed alpaca|alpaca-stream")
    assert not engine_host.state_path(engine.log_path).exists()


def test_a_streaming_engine_trades_all_sessions_over_one_market_data_connection(engine: EngineDriver) -> None:
    _start(engine, ["AAPL", "MSFT"])
    last = _run_until(engine, "2024-07-03 10:30")
    actor, windows = _feeds(engine)
    assert engine.emulator.stream_connections["data"] == 1  # Alpaca allows one per account
    assert actor["connected"] and actor["symbols"] == ["AAPL", "MSFT"] and actor["drops"] == 0
    for symbol in SESSIONS:
        # The warm-up and the first windows of the day come over REST (the stream had not seen them
        # begin; 3 here, one more if a minute is late), from then on every window from the stream.
        assert windows[symbol]["stream"] > windows[symbol]["rest"] >= 2, windows
        assert windows[symbol]["actor_down"] == 0
    human = engine.run("status").stdout
    assert "feed alpaca-stream: connected · AAPL, MSFT" in human and "windows from the stream" in human
    _assert_decided_as_on_rest(engine, last)

    engine.down()
    wait_for(lambda: _data_connections_open(engine.emulator) == 0)  # the connection is given back
    stopped = [r.event for r in engine.events("engine", "actor_stopped")]
    assert [e.actor for e in stopped] == ["market_data", "engine"]


def test_a_dropped_market_data_connection_costs_rest_windows_not_bars(engine: EngineDriver) -> None:
    emulator = engine.emulator
    _start(engine, ["AAPL", "MSFT"])
    _run_until(engine, "2024-07-03 10:25")
    before = _feeds(engine)[1]

    def reconnected() -> None:
        wait_for(lambda: emulator.stream_connections["data"] == 2)
        emulator.wait_for_subscription("MSFT")

    # Minutes 10:25..10:27 reach the stream, the connection is cut, 10:28 goes out while it is down,
    # and the client is back before 10:29's: the 10:25 window of every session must come over REST.
    engine.market.faults[_ns("2024-07-03 10:28")] = lambda: emulator.drop_streams(abrupt=True)
    engine.market.faults[_ns("2024-07-03 10:29")] = reconnected
    last = _run_until(engine, "2024-07-03 11:00")
    actor, after = _feeds(engine)
    assert actor["drops"] == 1 and actor["connected"] and emulator.stream_connections["data"] == 2
    for symbol in SESSIONS:
        assert after[symbol]["rest"] > before[symbol]["rest"], (before, after)  # the drop's windows
        assert after[symbol]["stream"] > before[symbol]["stream"] + 3, (before, after)  # and back on
    _assert_decided_as_on_rest(engine, last)  # every bar once, none missed, the same decisions
    engine.down()


def test_a_killed_market_data_actor_is_restarted_and_trading_goes_on(engine: EngineDriver) -> None:
    _start(engine, ["AAPL"])
    _run_until(engine, "2024-07-03 10:00")
    killed, before = _feeds(engine)
    assert killed["alive"] and before["AAPL"]["stream"] > 0
    os.kill(killed["pid"], signal.SIGKILL)
    assert wait_gone(killed["pid"])
    last = _run_until(engine, "2024-07-03 10:45")  # every cycle runs, on REST until the stream is back
    actor, after = _feeds(engine)
    assert actor["alive"] and actor["pid"] != killed["pid"] and pid_alive(actor["pid"])
    assert actor["restarts"] == 1 and actor["connected"] and actor["symbols"] == ["AAPL"]
    assert after["AAPL"]["stream"] > before["AAPL"]["stream"]  # the new actor streams again
    started = [r.event for r in engine.events("engine", "actor_started") if r.event.actor == "market_data"]
    assert [(e.pid, e.detail) for e in started][-1] == (actor["pid"], "restarted after its process died")
    # A call that found the actor gone read its window over REST and said so, once for the outage, and
    # the next call that answered cleared it.
    alerts = [(r.event.rule, r.event.severity) for r in engine.events(f"run/{engine.runs['AAPL']}", "alert")]
    outage = [("market_data", "warning"), ("market_data_cleared", "info")]
    assert alerts == (outage if after["AAPL"]["actor_down"] else [])
    _assert_decided_as_on_rest(engine, last)
    json.loads(engine.run("status", "--json").stdout)  # the engine answers as before
    engine.down()


def test_tape_stop_unsubscribes_the_symbol_no_running_session_reads(engine: EngineDriver) -> None:
    emulator = engine.emulator
    _start(engine, ["AAPL", "MSFT"])  # each warm-up subscribes its symbol
    for symbol in SESSIONS:
        emulator.wait_for_subscription(symbol, timeout=30)
    _stop(engine, "MSFT")
    wait_for(lambda: not emulator.data_subscribed("MSFT"))
    assert emulator.data_subscribed("AAPL") and emulator.data_subscribed("AAPL", "updatedBars")
    assert not emulator.data_subscribed("MSFT", "updatedBars")
    assert _feeds(engine)[0]["symbols"] == ["AAPL"]
    engine.down()


def test_tape_stop_keeps_the_symbol_another_running_session_reads(engine: EngineDriver) -> None:
    emulator = engine.emulator
    _start(engine, ["AAPL"])
    engine.run("spawn", "AAPL", "rsi", "--days-back", "3", "--timeframe", "5Min", "--cash", "40000")
    emulator.wait_for_subscription("AAPL", timeout=30)
    _stop(engine, "AAPL")  # sma_cross goes, rsi still reads AAPL
    assert _feeds(engine)[0]["symbols"] == ["AAPL"]
    assert emulator.data_subscribed("AAPL")
    _stop(engine, "AAPL", "rsi")  # the last session reading it
    wait_for(lambda: not emulator.data_subscribed("AAPL"))
    assert _feeds(engine)[0]["symbols"] == []
    engine.down()


def test_a_plain_tape_up_after_down_runs_with_the_last_feed_and_clock(engine: EngineDriver) -> None:
    first = engine.up("--feed", "alpaca-stream")
    assert "feed alpaca-stream (given), clock broker:0.02 (given)" in first.stdout
    engine.down()
    again = engine.run("up")
    assert "feed alpaca-stream (as last time), clock broker:0.02 (as last time)" in again.stdout
    status = engine.status()
    assert (status["engine"]["feed"], status["engine"]["clock"]) == ("alpaca-stream", "broker:0.02")
    assert status["market_data"]["alive"]
    engine.down()


def test_an_option_given_to_tape_up_overrides_the_last_one(engine: EngineDriver) -> None:
    engine.up("--feed", "alpaca-stream")
    engine.down()
    again = json.loads(engine.run("up", "--feed", "alpaca", "--json").stdout)
    assert again["chosen"] == {"feed": "given", "clock": "as last time"}
    status = engine.status()
    assert (status["engine"]["feed"], status["engine"]["clock"]) == ("alpaca", "broker:0.02")
    assert status["market_data"] is None
    engine.down()
