"""The event vocabulary: stable bytes, round trips, and old bytes decoding after a field is added."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from tape.events import schema as s

GOLDEN = Path(__file__).parent / "data" / "golden_events.json"
# Bytes written by the first release of the schema, kept forever: every later version must read them.
GOLDEN_V1 = Path(__file__).parent / "data" / "golden_events_v1.json"
FP = s.DataFingerprint(
    symbol="AAPL",
    source="sample",
    timeframe="1Day",
    start_ts=1,
    end_ts=2,
    rows=2,
    sha256="ab" * 32,
    adjusted=True,
)

SAMPLES: dict[str, s.Event] = {
    "run_started": s.RunStarted(
        ts=1,
        run_id="r1",
        mode="backtest",
        strategy="sma_cross",
        params={"short": 5, "long": 20},
        symbols=["AAPL"],
        config={"cash": 100000.0},
        data=[FP],
        code_version="0.1.0",
    ),
    "run_ended": s.RunEnded(
        ts=2, run_id="r1", bars=10, benchmark=[s.BenchmarkLeg(symbol="AAPL", first_close=1.0, last_close=2.0)]
    ),
    "bar": s.BarReceived(
        ts=3, symbol="AAPL", timeframe="5Min", open=1.0, high=2.0, low=0.5, close=1.5, volume=9.0
    ),
    "signal": s.Signal(
        ts=4,
        symbol="AAPL",
        strategy="sma_cross",
        side="buy",
        price=1.5,
        reason="cross up",
        values={"sma_short": 1.6, "sma_long": 1.5},
    ),
    "order_intent": s.OrderIntent(
        ts=5,
        intent_id="i1",
        symbol="AAPL",
        strategy="sma_cross",
        side="buy",
        qty=10.0,
        reason="entry",
        ref_price=1.5,
    ),
    "risk_accepted": s.RiskAccepted(ts=6, intent_id="i1", symbol="AAPL", qty=10.0, checks={"equity": 1e5}),
    "risk_rejected": s.RiskRejected(
        ts=7,
        intent_id="i2",
        symbol="AAPL",
        rule="max_positions",
        message="3 open",
        checks={"open_positions": 3.0},
    ),
    "order_submitted": s.OrderSubmitted(
        ts=8,
        client_order_id="c1",
        intent_id="i1",
        symbol="AAPL",
        side="buy",
        qty=10.0,
        reason="entry",
        strategy="sma_cross",
    ),
    "order_acknowledged": s.OrderAcknowledged(ts=9, client_order_id="c1", broker_order_id="b1"),
    "order_rejected": s.OrderRejected(ts=10, client_order_id="c2", symbol="AAPL", reason="buying power"),
    "order_cancelled": s.OrderCancelled(ts=11, client_order_id="c3", symbol="AAPL", reason="end of run"),
    "fill": s.Fill(
        ts=12,
        client_order_id="c1",
        exec_id="e1",
        symbol="AAPL",
        side="buy",
        qty=10.0,
        price=1.51,
        commission=2.5,
        slippage=0.01,
        reason="entry",
    ),
    "position_opened": s.PositionOpened(
        ts=13,
        symbol="AAPL",
        strategy="sma_cross",
        qty=10.0,
        entry_price=1.51,
        stop_price=1.43,
        take_profit_price=1.66,
        entry_commission=2.5,
    ),
    "position_closed": s.PositionClosed(
        ts=14,
        symbol="AAPL",
        strategy="sma_cross",
        qty=10.0,
        entry_ts=13,
        entry_price=1.51,
        exit_price=1.66,
        exit_reason="take_profit",
        gross_pnl=1.5,
        commission=5.0,
        net_pnl=-3.5,
    ),
    "equity_marked": s.EquityMarked(
        ts=15, equity=1e5, cash=9e4, peak=1.01e5, drawdown=1e3, drawdown_pct=0.99, bars=1, bars_in_market=1
    ),
    "actor_started": s.ActorStarted(ts=16, actor="portfolio", events_folded=12),
    "actor_stopped": s.ActorStopped(ts=17, actor="portfolio", reason="down"),
    "reconciled": s.Reconciled(ts=18, broker_positions={"AAPL": 10.0}, local_positions={"AAPL": 10.0}),
    "cycle_completed": s.CycleCompleted(ts=19, cycle=3, duration_ms=12.5, symbols=["AAPL"]),
    "alert": s.Alert(
        ts=20,
        rule="drawdown",
        severity="critical",
        message="dd 12%",
        value=12.0,
        threshold=10.0,
        day="2024-01-02",
    ),
    "operator_note": s.OperatorNote(ts=21, text="hello", author="ana"),
    "notification_sent": s.NotificationSent(
        ts=24, alert_id="r1:00000009", channel="email", rule="drawdown", target="smtp.example.com", wall_ns=99
    ),
    "notification_failed": s.NotificationFailed(
        ts=25,
        alert_id="r1:00000009",
        channel="webhook",
        error="HTTP 500",
        rule="drawdown",
        attempt=2,
        final=True,
        target="hooks.example.com",
        wall_ns=100,
    ),
    "notifier_started": s.NotifierStarted(ts=26, channels=["email", "webhook"], since_seq=41, wall_ns=101),
    "borrow_fee": s.BorrowFeeCharged(ts=27, symbol="AAPL", qty=100.0, price=180.0, rate_pct=0.3, fee=0.15),
    "stop_moved": s.StopMoved(ts=28, client_order_id="r-o2", symbol="AAPL", stop_price=104.5, extreme=110.0),
    "regime_changed": s.RegimeChanged(ts=23, symbol="AAPL", regime="trending", previous="ranging", adx=31.5),
    "session_spawned": s.SessionSpawned(
        ts=24,
        run_id="live-1",
        symbol="AAPL",
        strategy="sma_cross",
        interval="5m",
        config={"cash": 1.0},
        monitor={"max_drawdown_pct": 3.0},
    ),
    "session_stopped": s.SessionStopped(ts=25, run_id="live-1", symbol="AAPL", strategy="sma_cross"),
    "engine_configured": s.EngineConfigured(ts=26, feed="alpaca-stream", clock="broker:0.5"),
    "bars_recorded": s.BarsRecorded(
        ts=28,
        symbol="AAPL",
        timeframe="1Min",
        role="warm_up",
        times=[1, 2],
        open=[1.0, 2.0],
        high=[2.0, 3.0],
        low=[0.5, 1.5],
        close=[1.5, 2.5],
        volume=[9.0, 8.0],
        source="alpaca",
    ),
    "run_derived": s.RunDerived(
        ts=27, run_id="w1", derived_from="r1", changes={"stop_loss": 3.0, "param.short": "10"}, inputs="log"
    ),
    "rebalanced": s.Rebalanced(
        ts=27,
        run_id="r1",
        n=1,
        strategy="momentum",
        trigger="monthly",
        equity=1000.0,
        cash=10.0,
        targets={"AAPL": 0.5, "MSFT": 0.0},
        current={"MSFT": 0.4},
        orders={"AAPL": 3.0, "MSFT": -2.0},
        values={"AAPL": {"score": 0.1, "rank": 1.0}},
    ),
    "backtest_summary": s.BacktestSummary(
        ts=22,
        job_id="j1",
        strategy="sma_cross",
        params={"short": 5},
        symbols=["AAPL"],
        data=[FP],
        metrics={"sharpe": 1.2},
        phase="grid",
    ),
}


def test_every_event_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(s.EVENT_TYPES)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_events_round_trip_through_their_bytes(kind: str) -> None:
    event = SAMPLES[kind]
    assert s.kind_of(event) == kind
    assert s.decode(s.encode(event)) == event


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_encoding_is_byte_for_byte_what_older_versions_wrote(kind: str) -> None:
    """Pins the bytes: reordering, renaming or retyping a field fails here before it breaks old logs."""
    golden = json.loads(GOLDEN.read_text())
    assert s.encode(SAMPLES[kind]).hex() == golden[kind]


@pytest.mark.parametrize("kind", sorted(json.loads(GOLDEN_V1.read_text())))
def test_first_release_bytes_still_decode_to_the_same_kind(kind: str) -> None:
    event = s.decode(bytes.fromhex(json.loads(GOLDEN_V1.read_text())[kind]))
    assert s.kind_of(event) == kind


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_bytes_written_before_a_defaulted_field_existed_still_decode(kind: str) -> None:
    """Simulate the older struct (without the trailing defaulted fields) and decode its bytes today."""
    cls = s.EVENT_TYPES[kind]
    fields = cls.__struct_fields__
    defaults = cls.__struct_defaults__
    droppable = len(defaults)
    if droppable == 0:
        pytest.skip("no defaulted fields to drop")
    kept = fields[: len(fields) - droppable]
    old_cls = msgspec.defstruct(
        f"Old{cls.__name__}",
        [(f, cls.__annotations__.get(f, object)) for f in kept],
        bases=(s.Event,),
        tag=kind,
        kw_only=True,
    )
    old = old_cls(**{f: getattr(SAMPLES[kind], f) for f in kept})
    decoded = s.decode(msgspec.msgpack.encode(old))
    expected = msgspec.structs.replace(
        SAMPLES[kind],
        **{
            f: (d.factory() if isinstance(d, msgspec._core.Factory) else d)  # type: ignore[attr-defined]
            for f, d in zip(fields[len(kept) :], defaults, strict=True)
        },
    )
    assert decoded == expected
