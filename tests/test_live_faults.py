"""Timeouts and WebSocket drops in live sessions, through the real alpaca-py clients and the emulator.

The session runs on a simulated clock (see tests/test_live.py); the emulator's REST requests can be
held past the clients' timeouts (``stall_next``) and its WebSocket connections aborted mid-session.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tape.actors.alpaca.broker import AlpacaBroker
from tape.actors.alpaca.feed import AlpacaBarFeed, LiveBar
from tape.actors.alpaca.stream import MinuteStream
from tape.actors.alpaca.streaming_feed import StreamingBarFeed
from tape.actors.clock import SimulatedClock
from tape.actors.live_session import LiveSession, run_schedule
from tape.events.backtest import BacktestConfig
from tape.events.schema import Alert, CycleCompleted, Fill, OrderSubmitted
from tape.store.credentials import AlpacaCredentials
from tape.store.log import EventLog
from tests.alpaca_emulator import AlpacaEmulator
from tests.conftest import TapeRunner, assert_clean_failure
from tests.test_live import (
    MINUTE,
    SYMBOLS,
    Market,
    _emulator_env,
    _events,
    _ns,
    _top_level,
    seed_crypto_minutes,
)

TIMEOUT = 0.3  # seconds: the clients' read timeout in these tests


def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class StreamingMarket(Market):
    """The seeded market, whose minute bars also go out on the WebSocket as their minutes close."""

    def __init__(self, emulator: AlpacaEmulator) -> None:
        super().__init__(emulator)
        self.pushed: int | None = None  # minutes streamed so far (those before the start are history)

    def advance(self, now_ns: int) -> None:
        done = int(((self.ts + MINUTE) <= now_ns).sum())
        if self.pushed is None:
            self.pushed = done
        for i in range(self.pushed, done):
            closes = int(self.ts[i]) + MINUTE
            for when in sorted(w for w in self.faults if w < closes):  # faults between minutes
                self.faults.pop(when)()
            for symbol in SYMBOLS:
                self.emulator.push_bar(symbol, *self.rows[symbol][i][1:], ts=self.rows[symbol][i][0])
        self.pushed = max(self.pushed, done)
        super().advance(now_ns)


def _credentials(emulator: AlpacaEmulator) -> AlpacaCredentials:
    return AlpacaCredentials(
        api_key=emulator.key_id,
        secret_key=emulator.secret,
        base_url=emulator.trading_url,
        data_url=emulator.data_url,
        timeout_seconds=TIMEOUT,
        stream_url=emulator.stream_base_url,
    )


Start = Callable[..., LiveSession]


def run_session(
    market: Market,
    log_path: Path,
    until: str,
    *,
    begin: str = "2024-07-05 09:00",
    streaming: bool = False,
    trade_updates: bool = False,
    opened: list[Any] | None = None,
) -> LiveSession:
    """A session from ``begin`` to ``until`` on a simulated clock against ``market``'s emulator, with the
    REST feed or the streaming one; its feed and broker go to ``opened`` for the caller to close (a test
    may look at their streams first), or are closed at once."""
    credentials = _credentials(market.emulator)
    config = BacktestConfig(symbols=SYMBOLS, strategy="sma_cross", timeframe="5Min", cash=100_000.0)
    clock = SimulatedClock(_ns(begin), on_advance=market.advance)
    market.advance(clock.now_ns())
    rest = AlpacaBarFeed(credentials, "5Min", retry_wait_seconds=0)
    feed: Any = StreamingBarFeed(credentials, "5Min", rest=rest, settle_seconds=2) if streaming else rest
    broker = AlpacaBroker(credentials, retry_wait_seconds=0, trade_updates=trade_updates)
    session = LiveSession(config, run_id="live-test", broker=broker, feed=feed, log_path=log_path)
    try:
        session.start(clock.now_ns(), days_back=3)
        run_schedule(session, clock, 300, until_ns=_ns(until))
        session.stop(clock.now_ns())
    finally:
        if opened is None:
            _close(feed, broker)
        else:
            opened += [feed, broker]
    return session


def _close(*things: Any) -> None:
    for thing in things:  # streaming feeds and brokers: their streams
        if isinstance(thing, StreamingBarFeed | AlpacaBroker):
            thing.close()


@pytest.fixture
def session_run(alpaca_emulator: AlpacaEmulator, tmp_path: Path) -> Iterator[tuple[Market, Start]]:
    """(market, start(until, begin, streaming, trade_updates)): :func:`run_session` on the test's
    emulator and log; the feeds and brokers are closed after the test."""
    market = StreamingMarket(alpaca_emulator)
    opened: list[Any] = []

    def start(until: str, **options: Any) -> LiveSession:
        return run_session(market, tmp_path / "tape.db", until, opened=opened, **options)

    yield market, start
    _close(*opened)


def _expected_bars(first: str, last: str) -> set[tuple[str, int]]:
    return {(s, t) for s in SYMBOLS for t in range(_ns(first), _ns(last) + 1, 5 * MINUTE)}


def _assert_books_agree(market: Market, log_path: Path) -> None:
    """One broker order per logged decision, and the log's positions are the broker's."""
    ids = [o.client_order_id for o in _events(log_path, "order_submitted")]
    assert ids and len(ids) == len(set(ids))
    assert sorted(ids) == sorted(o["client_order_id"] for o in _top_level(market.emulator.orders))
    fills = _events(log_path, "fill")
    assert len({f.exec_id for f in fills}) == len(fills)
    assert _events(log_path, "reconciled")[-1].differences == []


# -- timeouts ------------------------------------------------------------------------------------


def test_a_warm_up_request_that_times_out_is_asked_again_and_the_session_starts(
    session_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    market, start = session_run
    market.emulator.stall_next(1, 1.0, "/v2/stocks", "GET")  # the warm-up's first bars request hangs
    start("2024-07-05 09:40")
    assert market.emulator.faults.stalls_pending == 0
    assert _events(tmp_path / "tape.db", "cycle_completed")[-1].ts == _ns("2024-07-05 09:40")


def test_a_data_request_that_times_out_is_alerted_and_back_filled(session_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    market, start = session_run
    emulator = market.emulator
    # The 10:00 cycle's bars request hangs for 2 s; the client gives up after 0.3 s.
    market.faults[_ns("2024-07-05 10:00")] = lambda: emulator.stall_next(1, 2.0, "/v2/stocks", "GET")
    start("2024-07-05 10:30")
    assert emulator.faults.stalls_pending == 0
    alerts = _events(tmp_path / "tape.db", "alert")
    assert [(a.rule, a.ts) for a in alerts] == [
        ("feed", _ns("2024-07-05 10:00")),
        ("feed_cleared", _ns("2024-07-05 10:05")),  # the next cycle's request answered
    ]
    assert "Timeout" in alerts[0].message
    cycles = {c.ts: c.skipped for c in _events(tmp_path / "tape.db", "cycle_completed")}
    assert cycles[_ns("2024-07-05 10:00")].startswith("feed error")
    bars = [(b.symbol, b.ts) for b in _events(tmp_path / "tape.db", "bar")]
    assert len(bars) == len(set(bars))  # nothing decided twice
    assert set(bars) == _expected_bars("2024-07-05 09:30", "2024-07-05 10:25")  # the gap back-filled


@pytest.mark.parametrize("after", [False, True], ids=["held-before-booking", "answer-lost"])
def test_an_order_submission_that_times_out_is_placed_exactly_once(
    session_run, tmp_path: Path, after
) -> None:  # type: ignore[no-untyped-def]
    market, start = session_run
    emulator = market.emulator
    # The first order of the run is held 1 s: before the emulator books it (the retry books it and
    # the late original is refused as a duplicate), or after (the retry is refused as a duplicate
    # and the order is looked up).
    emulator.stall_next(1, 1.0, "/v2/orders", method="POST", after=after)
    start("2024-07-05 12:00")
    assert emulator.faults.stalls_pending == 0
    log_path = tmp_path / "tape.db"
    _assert_books_agree(market, log_path)
    # Every order was POSTed once, except the held one, which was sent twice under the same id.
    assert _posts(emulator) == len(_top_level(emulator.orders)) + 1
    assert not _events(log_path, "order_rejected") and not _events(log_path, "alert")
    first = _events(log_path, "order_submitted")[0].client_order_id
    assert emulator.order(first)["status"] == "filled"


def test_an_order_alpaca_has_but_cannot_read_back_stays_working_and_is_not_logged_rejected(
    session_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    market, start = session_run
    emulator = market.emulator
    # The first order is booked but its answer is lost; the retry is refused as a duplicate id, and
    # the lookup of the existing order answers 500 to all 4 of alpaca-py's attempts. The order is at
    # Alpaca: it must stay working.
    emulator.stall_next(1, 1.0, "/v2/orders", method="POST", after=True)
    emulator.fail_next(4, 500, "/v2/orders:by_client_order_id", method="GET")
    start("2024-07-05 12:00")
    log_path = tmp_path / "tape.db"
    assert not _events(log_path, "order_rejected")
    alerts = _events(log_path, "alert")
    assert [a.rule for a in alerts] == ["broker", "broker_cleared"]
    assert "could not be read back" in alerts[0].message
    _assert_books_agree(market, log_path)
    first = _events(log_path, "order_submitted")[0].client_order_id
    assert any(f.client_order_id == first for f in _events(log_path, "fill"))


def test_an_order_that_gets_no_answer_at_all_is_looked_up_and_sent_again(session_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    market, start = session_run
    emulator = market.emulator
    # Every attempt at the first order is held past the timeout and then answered with a 500, so
    # it never reaches the book: the session alerts and keeps the order working; its next lookup
    # finds nothing and sends it again under the same id.
    emulator.stall_next(4, 0.5, "/v2/orders", method="POST")
    emulator.fail_next(4, 500, "/v2/orders")
    start("2024-07-05 12:00")
    log_path = tmp_path / "tape.db"
    alerts = _events(log_path, "alert")
    assert [a.rule for a in alerts] == ["broker", "broker_cleared"]  # the lookup and re-send answered
    assert "may have been placed" in alerts[0].message
    _assert_books_agree(market, log_path)
    first = _events(log_path, "order_submitted")[0].client_order_id
    assert emulator.order(first)["status"] == "filled"
    assert any(f.client_order_id == first for f in _events(log_path, "fill"))


def test_a_feed_outage_over_several_cycles_is_one_alert_until_bars_answer_again(
    session_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    market, start = session_run
    # Three cycles' bar requests fail (4 attempts each): an hour of this would be 12 cycles, and
    # must still be one message to a human. Each failed cycle is in the log all the same.
    market.faults[_ns("2024-07-05 10:00")] = lambda: market.emulator.fail_next(12, 500, "/v2/stocks")
    start("2024-07-05 10:30")
    log_path = tmp_path / "tape.db"
    assert [(a.rule, a.severity, a.ts) for a in _events(log_path, "alert")] == [
        ("feed", "warning", _ns("2024-07-05 10:00")),
        ("feed_cleared", "info", _ns("2024-07-05 10:15")),
    ]
    failed = [c.ts for c in _events(log_path, "cycle_completed") if c.skipped.startswith("feed error")]
    assert failed == [_ns(f"2024-07-05 10:{m}") for m in ("00", "05", "10")]


def test_a_restarted_session_neither_raises_a_standing_feed_alert_again_nor_forgets_to_clear_it(
    session_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    market, start = session_run
    emulator = market.emulator
    # The outage starts at 10:00 and the session stops at 10:05 with its feed alert standing; the
    # restarted session (rebuilt from the log alone) meets one more failure at 10:10, then bars.
    market.faults[_ns("2024-07-05 10:00")] = lambda: emulator.fail_next(8, 500, "/v2/stocks")
    start("2024-07-05 10:05")
    market.faults[_ns("2024-07-05 10:10")] = lambda: emulator.fail_next(4, 500, "/v2/stocks")
    start("2024-07-05 10:30", begin="2024-07-05 10:05")
    log_path = tmp_path / "tape.db"
    assert emulator.faults._failures == []  # the restart's failure was met
    assert [(a.rule, a.ts) for a in _events(log_path, "alert")] == [
        ("feed", _ns("2024-07-05 10:00")),
        ("feed_cleared", _ns("2024-07-05 10:15")),
    ]
    failed = [c.ts for c in _events(log_path, "cycle_completed") if c.skipped.startswith("feed error")]
    assert failed == [_ns(f"2024-07-05 10:{m}") for m in ("00", "05", "10")]
    assert len(_events(log_path, "actor_started")) == 2  # it was two sessions


def test_an_order_outage_over_several_cycles_is_one_broker_alert_and_each_unanswered_order_is_logged(
    session_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    market, start = session_run
    emulator = market.emulator
    # Order submissions get no answer (held past the timeout, then refused, so nothing is booked)
    # for 12 attempts: the first order, then its re-sends in the next two cycles. Lookups answer.
    emulator.stall_next(12, 0.5, "/v2/orders", method="POST")
    emulator.fail_next(12, 500, "/v2/orders", method="POST")
    start("2024-07-05 12:00")
    assert emulator.faults.stalls_pending == 0 and emulator.faults._failures == []
    log_path = tmp_path / "tape.db"
    alerts = _events(log_path, "alert")
    assert [(a.rule, a.severity) for a in alerts] == [("broker", "warning"), ("broker_cleared", "info")]
    cycles = _events(log_path, "cycle_completed")
    unanswered = [c for c in cycles if c.broker_errors]
    assert sum(len(c.broker_errors) for c in unanswered) == 3  # every one of them is in the log
    assert len(unanswered) >= 2  # the outage spanned cycles
    assert alerts[1].ts == next(c.ts for c in cycles if c.ts > unanswered[-1].ts)  # the next cycle
    _assert_books_agree(market, log_path)


def _posts(emulator: AlpacaEmulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "POST" and r.path == "/v2/orders")


# -- the streaming feed --------------------------------------------------------------------------


def test_streamed_minutes_aggregate_to_the_rest_bars(alpaca_emulator: AlpacaEmulator) -> None:
    emulator = alpaca_emulator
    symbols = ["AAPL", "BTC/USD"]
    t0 = _ns("2024-01-02 09:30")
    credentials = _credentials(emulator)
    rest = AlpacaBarFeed(credentials, "5Min", retry_wait_seconds=0)
    feed = StreamingBarFeed(credentials, "5Min", rest=rest, settle_seconds=2)
    price = {"AAPL": 187.0, "BTC/USD": 42_000.0}

    def push(minutes: range) -> None:
        for m in minutes:
            for k, symbol in enumerate(symbols):
                if symbol == "AAPL" and m in (7, 12):
                    continue  # minutes without trades have no bar, on the stream as over REST
                p = price[symbol] * (1 + 0.001 * ((m * 7 + k * 3) % 11 - 5))
                when = dt.datetime.fromtimestamp((t0 + m * MINUTE) / 1e9, tz=dt.UTC)
                emulator.push_bar(symbol, p, p * 1.002, p * 0.997, p * 1.0005, 100 + m * 13 + k, ts=when)

    try:
        assert feed.completed(symbols, t0 - 60 * MINUTE, t0) == []  # starts the streams
        wait_for(lambda: feed.connected)
        push(range(0, 5))
        wait_for(lambda: all(link.newest_ns == t0 + 4 * MINUTE for link in feed._links.values()))
        first = feed.completed(symbols, t0 - 5 * MINUTE, t0 + 5 * MINUTE)  # finds the stream current
        assert feed.windows == {"stream": 0, "rest": 4}
        push(range(5, 20))
        streamed = feed.completed(symbols, t0, t0 + 20 * MINUTE + 30_000_000_000)
        assert feed.windows == {"stream": 2, "rest": 4}
        assert_bars_equal(streamed, rest.completed(symbols, t0, t0 + 20 * MINUTE))
        assert [(b.symbol, b.ts) for b in first + streamed] == [
            (s, t0 + k * 5 * MINUTE) for k in range(4) for s in symbols
        ]
        # A bar still forming (the minutes 20..21 of the 20..25 bar) is not handed over.
        push(range(20, 22))
        assert feed.completed(symbols, t0 + 15 * MINUTE, t0 + 24 * MINUTE) == []
    finally:
        feed.close()
    assert not any(t.name == "alpaca-bars" for t in threading.enumerate())


def assert_bars_equal(got: list[LiveBar], want: list[LiveBar]) -> None:
    assert [tuple(b) for b in got] == [tuple(b) for b in want]  # exact: same floats, same order


def _push_minutes(emulator: AlpacaEmulator, symbols: list[str], t0: int, minutes: range) -> None:
    for m in minutes:
        for k, symbol in enumerate(symbols):
            p = (100.0 + 50 * k) * (1 + 0.001 * ((m * 7 + k * 3) % 11 - 5))
            when = dt.datetime.fromtimestamp((t0 + m * MINUTE) / 1e9, tz=dt.UTC)
            emulator.push_bar(symbol, p, p * 1.002, p * 0.997, p * 1.0005, 100 + m * 13 + k, ts=when)


def test_a_symbol_added_to_the_running_stream_is_read_over_rest_for_the_window_it_joined_in(
    alpaca_emulator: AlpacaEmulator,
) -> None:
    """The engine subscribes a session's symbol on the connection already open for the others (Alpaca
    allows one). Minutes of the window that went out before the subscription never reached the buffer,
    so that window must come over REST; the next one is whole and comes from the stream."""
    emulator = alpaca_emulator
    t0, bar = _ns("2024-01-02 09:30"), 5 * MINUTE
    credentials = _credentials(emulator)
    rest = AlpacaBarFeed(credentials, "5Min", retry_wait_seconds=0)
    stream = MinuteStream(credentials, settle_seconds=2)
    try:
        stream.subscribe(["AAPL"])
        wait_for(lambda: stream.connected)
        _push_minutes(emulator, ["AAPL", "MSFT"], t0, range(0, 5))
        wait_for(lambda: stream._links["stocks"].newest_ns == t0 + 4 * MINUTE)
        assert stream.window(["AAPL"], bar, t0 - bar, t0 + bar).rest == ["AAPL"]  # AAPL counts from here
        _push_minutes(emulator, ["AAPL", "MSFT"], t0, range(5, 7))
        stream.subscribe(["MSFT"])  # at 09:37, in the middle of the 09:35 bar
        wait_for(lambda: "MSFT" in stream._links["stocks"].confirmed)
        _push_minutes(emulator, ["AAPL", "MSFT"], t0, range(7, 10))
        joined = stream.window(["MSFT"], bar, t0, t0 + 2 * bar)
        assert (joined.streamed, joined.rest) == ([], ["MSFT"])
        whole = stream.window(["AAPL"], bar, t0, t0 + 2 * bar)
        assert (whole.streamed, whole.rest) == (["AAPL"], [])
        assert_bars_equal(whole.bars, rest.completed(["AAPL"], t0, t0 + 2 * bar))
        _push_minutes(emulator, ["AAPL", "MSFT"], t0, range(10, 15))
        after = stream.window(["MSFT"], bar, t0 + bar, t0 + 3 * bar)
        assert (after.streamed, after.rest) == (["MSFT"], [])
        assert_bars_equal(after.bars, rest.completed(["MSFT"], t0 + bar, t0 + 3 * bar))
    finally:
        stream.close()
    assert emulator.stream_connections["data"] == 1  # the symbol joined the open connection


def test_one_minute_stream_serves_every_timeframe_dividing_an_hour(alpaca_emulator: AlpacaEmulator) -> None:
    """Engine sessions trade different bar sizes off the one connection: the same minutes aggregate to
    each request's timeframe, equal to Alpaca's REST bars of that timeframe."""
    emulator = alpaca_emulator
    t0 = _ns("2024-01-02 09:30")
    after, now = _ns("2024-01-02 09:59"), _ns("2024-01-02 12:00")
    credentials = _credentials(emulator)
    stream = MinuteStream(credentials, settle_seconds=2)
    try:
        stream.subscribe(["AAPL"])
        wait_for(lambda: stream.connected)
        _push_minutes(emulator, ["AAPL"], t0, range(0, 15))
        wait_for(lambda: stream._links["stocks"].newest_ns == t0 + 14 * MINUTE)
        stream.window(["AAPL"], MINUTE, t0 - MINUTE, t0 + 15 * MINUTE)  # current: AAPL counts from here
        _push_minutes(emulator, ["AAPL"], t0, range(15, 150))
        for timeframe, minutes in (("1Min", 1), ("5Min", 5), ("1Hour", 60)):
            answer = stream.window(["AAPL"], minutes * MINUTE, after, now)
            assert answer.streamed == ["AAPL"], timeframe
            want = AlpacaBarFeed(credentials, timeframe).completed(["AAPL"], after, now)
            assert len(want) == 120 // minutes
            assert_bars_equal(answer.bars, want)
        # A daily bar (cut at New York midnight, not UTC) is never aggregated from the stream.
        assert stream.window(["AAPL"], 1440 * MINUTE, t0 - 2880 * MINUTE, now).rest == ["AAPL"]
    finally:
        stream.close()


def test_a_websocket_drop_mid_session_is_back_filled_over_rest_and_nothing_is_decided_twice(
    session_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    market, start = session_run
    emulator = market.emulator

    def reconnected(opened: int) -> Callable[[], None]:
        def wait() -> None:
            wait_for(lambda: emulator.stream_connections["data"] > opened)
            emulator.wait_for_subscription("AAPL")

        return wait

    # Minutes 10:25..10:27 reach the stream; then the connection is aborted, the 10:28 minute is
    # pushed while it is down, and the client reconnects before 10:29's. The 10:25 window is read
    # over REST. The second drop does not wait: the session runs on (over REST) while the client
    # reconnects; the test only waits for that reconnection at 11:45, so its outcome does not depend on
    # how many cycles this machine runs in the second or so a reconnection takes.
    market.faults[_ns("2024-07-05 10:28")] = lambda: emulator.drop_streams(abrupt=True)
    market.faults[_ns("2024-07-05 10:29")] = reconnected(1)
    market.faults[_ns("2024-07-05 11:32")] = lambda: emulator.drop_streams(abrupt=True)
    market.faults[_ns("2024-07-05 11:45")] = reconnected(2)
    session = start("2024-07-05 12:30", streaming=True)
    feed = session.feed
    assert isinstance(feed, StreamingBarFeed)
    assert feed.drops >= 2 and emulator.stream_connections["data"] >= 3
    log_path = tmp_path / "tape.db"
    bars = _events(log_path, "bar")
    keys = [(b.symbol, b.ts) for b in bars]
    assert len(keys) == len(set(keys))  # nothing decided twice
    assert set(keys) == _expected_bars("2024-07-05 09:30", "2024-07-05 12:25")  # nothing missed
    # Most windows came from the stream; those around each drop (and the warm-up) over REST.
    assert feed.windows["stream"] > feed.windows["rest"] >= 3, feed.windows
    # What the session decided on is what Alpaca's REST bars say, bar for bar.
    rest = AlpacaBarFeed(_credentials(emulator), "5Min").completed(
        SYMBOLS, _ns("2024-07-05 09:25"), _ns("2024-07-05 12:30")
    )
    logged = [LiveBar(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars]
    assert_bars_equal(sorted(logged), sorted(rest))
    _assert_books_agree(market, log_path)
    assert not _events(log_path, "alert")


def test_tape_trade_with_the_streaming_feed_subscribes_and_trades(
    tape: TapeRunner, alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    emulator = alpaca_emulator
    seed_crypto_minutes(emulator, seed=5, minutes=1440)
    env = {**_emulator_env(emulator), "ALPACA_TIMEOUT": "5"}
    args = ["trade", "BTC/USD", "--broker", "alpaca", "--feed", "alpaca-stream", "--interval", "1s"]
    result = tape(*args, "--cycles", "3", "--days-back", "1", "--json", env=env)
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    with EventLog.open(tmp_path / "tape.db") as log:
        events = [r.event for r in log.read(stream_prefix=f"run/{run_id}")]
    assert events[0].label.startswith("broker=alpaca feed=alpaca-stream")
    assert sum(isinstance(e, CycleCompleted) for e in events) == 3
    assert emulator.stream_connections["data"] == 1  # the session subscribed to the crypto stream


def test_a_bad_alpaca_timeout_is_one_clear_message(tape: TapeRunner, alpaca_emulator: AlpacaEmulator) -> None:
    env = {**_emulator_env(alpaca_emulator), "ALPACA_TIMEOUT": "soon"}
    result = tape("trade", "AAPL", "--broker", "alpaca", "--feed", "alpaca-stream", env=env)
    assert_clean_failure(result, "ALPACA_TIMEOUT must be a number of seconds")


# -- the trade-update stream ---------------------------------------------------------------------


def test_duplicate_trade_updates_do_not_duplicate_fills(session_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    market, start = session_run
    emulator = market.emulator
    emulator.duplicate_trade_updates(True)  # every trade update arrives twice
    session = start("2024-07-05 12:00", trade_updates=True)
    updates = session.broker.updates
    assert updates is not None
    log_path = tmp_path / "tape.db"
    _assert_books_agree(market, log_path)
    # The stream heard every execution the emulator made, each twice, and kept each once.
    assert set(updates.executions) == {f.execution_id for f in emulator.fills}
    assert updates.received >= 2 * len(updates.executions) > 0, (updates.received, len(updates.executions))
    fills = _events(log_path, "fill")
    assert len(fills) == len({f.client_order_id for f in fills})  # one Fill per filled order
    filled = {o["client_order_id"] for o in _top_level(emulator.orders) if o["status"] == "filled"}
    assert filled and filled <= {f.client_order_id for f in fills}


ROUTING_DELAY = 0.5  # seconds the emulator takes to route (and fill) an order after accepting it


def _order_and_fill_cycles(log_path: Path) -> list[tuple[int, int]]:
    """(cycle of the order, cycle of its fill) for every market order that filled: an event's cycle is
    one more than the CycleCompleted events logged before it."""
    cycle, placed, pairs = 1, {}, []
    with EventLog.open(log_path) as log:
        for record in log.read(stream_prefix="run/live-test"):
            event = record.event
            if isinstance(event, CycleCompleted):
                cycle += 1
            elif isinstance(event, OrderSubmitted) and event.order_type == "market":
                placed[event.client_order_id] = cycle
            elif isinstance(event, Fill) and event.client_order_id in placed:
                pairs.append((placed[event.client_order_id], cycle))
    return pairs


def test_with_trade_updates_a_market_order_fills_in_the_cycle_that_placed_it(
    session_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    market, start = session_run
    market.emulator.set_routing_delay(ROUTING_DELAY)  # a poll right after the order finds it unfilled
    start("2024-07-05 12:00", trade_updates=True)
    pairs = _order_and_fill_cycles(tmp_path / "tape.db")
    assert pairs and all(order == fill for order, fill in pairs), pairs
    assert not _events(tmp_path / "tape.db", "alert")


def test_without_trade_updates_a_market_order_fills_in_a_later_cycle(session_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    market, start = session_run
    market.emulator.set_routing_delay(ROUTING_DELAY)
    start("2024-07-05 12:00", trade_updates=False)  # `--no-trade-updates`: polling alone
    pairs = _order_and_fill_cycles(tmp_path / "tape.db")
    assert pairs and all(fill > order for order, fill in pairs), pairs


def _fills(log_path: Path) -> list[tuple[Any, ...]]:
    # Client order ids are left out: they come from log positions, which an alert moves.
    return [(f.ts, f.symbol, f.side, f.qty, f.price, f.reason) for f in _events(log_path, "fill")]


@pytest.mark.parametrize(
    ("fault", "noticed"),
    [
        ("login refused", ("2024-07-05 09:00", "2024-07-05 09:00")),  # when the session starts
        ("dropped mid-session", ("2024-07-05 10:30", "2024-07-05 12:00")),  # at a cycle after the drop
    ],
)
def test_without_its_trade_update_stream_a_session_trades_on_by_polling_and_alerts_once(
    session_run, tmp_path: Path, caplog: pytest.LogCaptureFixture, fault: str, noticed: tuple[str, str]
) -> None:  # type: ignore[no-untyped-def]
    market, start = session_run
    emulator = market.emulator
    if fault == "login refused":
        emulator.refuse_trade_stream("auth")
    else:  # the stream listens, then drops and every reconnect is refused
        market.faults[_ns("2024-07-05 10:30")] = lambda: (
            emulator.refuse_trade_stream("connect"),
            emulator.drop_streams(),
        )
    start("2024-07-05 12:00", trade_updates=True)
    log_path = tmp_path / "tape.db"
    assert _events(log_path, "cycle_completed")[-1].ts == _ns("2024-07-05 12:00")  # traded to the end
    alerts = _events(log_path, "alert")
    assert [(a.rule, a.severity) for a in alerts] == [("trade_updates", "warning")]
    assert "trade-update stream is unavailable" in alerts[0].message and "polling only" in alerts[0].message
    assert _ns(noticed[0]) <= alerts[0].ts <= _ns(noticed[1])
    _assert_books_agree(market, log_path)
    # Nothing was logged that would reach stderr (alpaca-py's own loop logs each failed attempt with a
    # traceback and each drop as a warning); the CLI test checks a real session's stderr.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    with AlpacaEmulator() as other:  # the same session, its stream up all along
        run_session(StreamingMarket(other), tmp_path / "streamed.db", "2024-07-05 12:00", trade_updates=True)
    assert _fills(log_path) == _fills(tmp_path / "streamed.db") != []


def test_tape_trade_with_its_trade_update_stream_refused_trades_by_polling_with_a_clean_stderr(
    tape: TapeRunner, alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    seed_crypto_minutes(alpaca_emulator, seed=3, minutes=2 * 1440)
    alpaca_emulator.refuse_trade_stream("auth")
    args = ["trade", "BTC/USD", "--broker", "alpaca", "--feed", "alpaca", "--interval", "1s", "--cycles", "3"]
    result = tape(*args, "--days-back", "1", "--json", env=_emulator_env(alpaca_emulator))
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    with EventLog.open(tmp_path / "tape.db") as log:
        events = [r.event for r in log.read(stream_prefix=f"run/{run_id}")]
    assert sum(isinstance(e, CycleCompleted) for e in events) == 3
    alerts = [e for e in events if isinstance(e, Alert)]
    assert [(a.rule, a.severity) for a in alerts] == [("trade_updates", "warning")]
    assert alpaca_emulator.stream_connections["trading"] == 1  # one login tried, refused, not retried
    assert "trade-update stream unavailable, polling only" in result.stderr
    assert "Traceback" not in result.stderr and "authenticate" not in result.stderr, result.stderr
