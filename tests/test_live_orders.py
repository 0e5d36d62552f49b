"""Working entries (limit, stop, stop-limit; day and gtc) traded three ways on the same crafted bars:
the backtest, the bar-by-bar session the simulated broker runs (`tape trade --broker sim`), and a live
session whose orders rest at the local Alpaca emulator, through the real alpaca-py clients. Each case
names the bar the entry fills on (or expires on) and the price, and all three must agree on it and on
every decision event.

The bars are five-minute bars: the last half hour of Friday 2024-07-05 (the live session's warm-up),
the last hour of Monday the 8th and the first of Tuesday the 9th, 30 in all. Between two cycles the
emulator trades through the bar that is ending (emu.play_bar: the open as a print, then continuously
to the extremes and the close), so an order resting there executes the way a venue executes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pytest

from tape.events.backtest import BacktestConfig, run_backtest
from tape.events.bars import BarSeries
from tape.events.costs import CostModel
from tape.events.schema import BarReceived, CycleCompleted, Event
from tape.events.strategies import LOADED, install
from tests.alpaca_emulator import AlpacaEmulator
from tests.crafted_live import (
    BAR_NS,
    Moves,
    Venue,
    crafted_bars,
    event_kind,
    fills,
    one_entry_config,
    run_live,
)
from tests.test_order_rules import SPEC, BuyAt
from tests.test_session import replay_session

SYMBOL = "XYZ"
NY = "America/New_York"
WINDOWS = [("2024-07-05 15:30", 6), ("2024-07-08 15:00", 12), ("2024-07-09 09:30", 12)]  # (start, bars)
WARM_UP = 6  # the 5th's bars: the live session warms up on them
SIGNAL = WARM_UP + 1  # BUY on the close of the 8th's 15:05 bar (close 100): entries work from 15:10
DAY_END = WARM_UP + 11  # the 8th's last bar (15:55)
NEXT_DAY = DAY_END + 3  # the 9th's 09:40 bar
DECISIONS = (
    "signal",
    "order_intent",
    "risk_accepted",
    "risk_rejected",
    "order_submitted",
    "order_cancelled",
    "order_rejected",
    "fill",
    "position_opened",
    "position_closed",
    "stop_moved",
)


def _session_bars() -> np.ndarray:
    starts = [(pd.Timestamp(text, tz=NY).value, n) for text, n in WINDOWS]
    return np.concatenate([np.arange(t, t + n * BAR_NS, BAR_NS) for t, n in starts]).astype(np.int64)


TS = _session_bars()


def _bars(moves: Moves) -> BarSeries:
    return crafted_bars(SYMBOL, TS, moves)


def _config(**risk: Any) -> BacktestConfig:
    return one_entry_config(SYMBOL, SPEC, SIGNAL, CostModel(slippage_bps=0, commission=0), **risk)


@pytest.fixture
def buy_at() -> Iterator[None]:
    install(SPEC, BuyAt, {"kind": "test", "location": __file__, "class": "BuyAt", "sha256": "0"})
    yield
    LOADED.pop(SPEC, None)


def _live(
    emulator: AlpacaEmulator,
    tmp_path: Path,
    config: BacktestConfig,
    bars: BarSeries,
    *,
    restart_at: str | None = None,
) -> list[Event]:
    """A live session on ``bars`` at the emulator, from the 8th's 15:00 cycle to the 9th's 10:25; its log.
    ``restart_at``: the process stops after that cycle and a new one resumes the run from the log."""
    stops = [pd.Timestamp(t, tz=NY).value for t in ([restart_at] if restart_at else [])]
    return run_live(
        Venue(emulator, bars),
        tmp_path / "tape.db",
        config,
        run_id="live-orders",
        start_ns=int(pd.Timestamp("2024-07-08 14:58", tz=NY).value),
        until_ns=[*stops, pd.Timestamp("2024-07-09 10:25", tz=NY).value],
        days_back=3,
    )


def _decisions(events: list[Event], bar_of: list[int]) -> list[tuple[Any, ...]]:
    """(bar index, kind, what it says) of every decision event, without ids, times and the run's end (a
    live fill is stamped when the session collected it, after its bar: hence no ``entry_ts`` either)."""
    index = {int(t): k for k, t in enumerate(TS)}
    out = []
    for event, bar in zip(events, bar_of, strict=True):
        kind = event_kind(event)
        if kind not in DECISIONS or getattr(event, "reason", "") in ("end", "end of data"):
            continue
        fields = msgspec.structs.asdict(event)
        for drop in ("ts", "entry_ts", "client_order_id", "intent_id", "exec_id", "values", "strategy"):
            fields.pop(drop, None)
        out.append((bar if bar >= 0 else index[event.ts], kind, fields))
    return out


def _backtest(config: BacktestConfig, bars: BarSeries) -> list[tuple[Any, ...]]:
    events = run_backtest(config, [bars], run_id="r")
    assert replay_session(config, [bars], "r") == events[1:-1]  # the simulated broker's session: the same
    return _decisions(events, [-1] * len(events))


def _live_decisions(events: list[Event]) -> list[tuple[Any, ...]]:
    """The live log's decisions, each at the bar of its cycle: a cycle collects what the broker did
    during the bar that just ended, then receives that bar and decides on its close."""
    index = {int(t): k for k, t in enumerate(TS)}
    bar_of, cycle, pending = [], [], -1
    for event in events:
        cycle.append(event)
        if isinstance(event, BarReceived):
            pending = index[event.ts]
        if isinstance(event, CycleCompleted):
            bar_of += [pending if pending >= WARM_UP else -2] * len(cycle)
            cycle, pending = [], -1
    bar_of += [-2] * len(cycle)
    kept = [(e, b) for e, b in zip(events, bar_of, strict=True) if b != -2]
    return _decisions([e for e, _ in kept], [b for _, b in kept])


def _cancels(decisions: list[tuple[Any, ...]]) -> list[tuple[int, str]]:
    return [(bar, f["reason"]) for bar, kind, f in decisions if kind == "order_cancelled"]


F, G = SIGNAL + 1, SIGNAL + 2  # the first and second bar an entry works
CASES = {
    # limit 99.50: bar G trades through it (low 99.00): filled at the limit
    "limit_through": (
        {"entry_order": "limit", "tif": "gtc"},
        {G: (100.0, 100.2, 99.0, 99.8)},
        [(G, 99.5)],
        [],
    ),
    # limit 99.50: bar F opens at 99.20, below it (a gap): filled at the better open
    "limit_gap": ({"entry_order": "limit"}, {F: (99.2, 99.4, 99.0, 99.3)}, [(F, 99.2)], []),
    # stop 100.50: bar G rises through it: filled at the stop
    "stop": ({"entry_order": "stop"}, {G: (100.0, 101.0, 99.9, 100.8)}, [(G, 100.5)], []),
    # stop 100.50, limit 101.00: bar F gaps to 101.50, past the limit: triggered, not filled; bar G
    # falls back through the limit: filled at the limit
    "stop_limit_gap": (
        {"entry_order": "stop_limit", "tif": "gtc"},
        {F: (101.5, 102.0, 101.2, 101.8), G: (101.4, 101.5, 100.6, 100.8)},
        [(G, 101.0)],
        [],
    ),
    # a day limit at 99.50 never reached on the 8th expires with its session (its last bar, 15:55); the
    # 9th trades through 99.50 and nothing fills
    "day_expiry": (
        {"entry_order": "limit", "tif": "day"},
        {NEXT_DAY: (100.0, 100.2, 99.0, 99.8)},
        [],
        [(DAY_END, "expired")],
    ),
    # the same limit gtc survives the session's end and fills on the 9th
    "gtc": (
        {"entry_order": "limit", "tif": "gtc"},
        {NEXT_DAY: (100.0, 100.2, 99.0, 99.8)},
        [(NEXT_DAY, 99.5)],
        [],
    ),
    # gtc with an expiry in bars: cancelled after 3 bars unfilled, by the session (the broker holds it)
    "gtc_expire_bars": (
        {"entry_order": "limit", "tif": "gtc", "expire_bars": 3},
        {F + 3: (100.0, 100.2, 99.0, 99.8)},
        [],
        [(F + 2, "expired")],
    ),
}


@pytest.mark.usefixtures("buy_at")
@pytest.mark.parametrize("case", list(CASES))
def test_a_working_entry_fills_alike_in_backtest_sim_session_and_at_the_alpaca_emulator(
    case: str, alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    risk, moves, filled, cancels = CASES[case]
    config, bars = _config(**risk), _bars(moves)
    backtest = _backtest(config, bars)
    assert [(b, p) for b, _, p in fills(backtest)] == filled
    assert _cancels(backtest) == cancels
    live = _live_decisions(_live(alpaca_emulator, tmp_path, config, bars))
    assert live == [d for d in backtest if d[0] < len(TS) - 1]  # the 9th's last bar is seen on the 10th
    entries = [o for o in alpaca_emulator.orders if o["side"] == "buy"]
    assert [(o["type"], o["time_in_force"]) for o in entries] == [
        (risk["entry_order"], risk.get("tif", "day"))
    ]


AT_99 = {"entry_order": "limit", "tif": "gtc"}  # a limit at 99.50, filled at F's open gapping to 99.00
GAP_99 = (99.0, 99.2, 98.9, 99.1)
EXIT_CASES = {
    # stop 98.01 and target 99.99 around the entry at 99.00: bar G reaches both and closes up, so the
    # market passes the low first: the stop fills at Alpaca, as under the model's stop-first rule
    "stop_before_target": (
        {**AT_99, "stop_loss_pct": 1.0, "take_profit_pct": 1.0},
        {F: GAP_99, G: (99.1, 100.5, 97.5, 100.2)},
        [(F, "entry", 99.0), (G, "stop_loss", 98.01)],
    ),
    # a limit at 99.50 only touched (low 99.50): with --limit-fill touch the model fills, as Alpaca does
    "limit_touch": (
        {"entry_order": "limit", "tif": "gtc", "limit_fill": "touch"},
        {G: (100.0, 100.2, 99.5, 99.8)},
        [(G, "entry", 99.5)],
    ),
}


@pytest.mark.usefixtures("buy_at")
@pytest.mark.parametrize("case", list(EXIT_CASES))
def test_stop_before_target_and_a_touched_limit_fill_alike_in_backtest_sim_session_and_at_alpaca(
    case: str, alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    risk, moves, filled = EXIT_CASES[case]
    config, bars = _config(**risk), _bars(moves)
    backtest = _backtest(config, bars)
    assert fills(backtest) == filled
    live = _live_decisions(_live(alpaca_emulator, tmp_path, config, bars))
    assert live == [d for d in backtest if d[0] < len(TS) - 1]


@pytest.mark.usefixtures("buy_at")
def test_when_a_bar_reaching_both_closes_down_alpaca_takes_the_target_the_model_the_stop(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    # The documented difference: the model cannot know which extreme came first and takes the stop;
    # at Alpaca the market of a bar that closes down passes its high first, and the target fills.
    config = _config(**AT_99, stop_loss_pct=1.0, take_profit_pct=1.0)
    bars = _bars({F: GAP_99, G: (99.1, 100.5, 97.5, 97.8)})
    assert fills(_backtest(config, bars)) == [(F, "entry", 99.0), (G, "stop_loss", 98.01)]
    live = fills(_live_decisions(_live(alpaca_emulator, tmp_path, config, bars)))
    assert live == [(F, "entry", 99.0), (G, "take_profit", 99.99)]


@pytest.mark.usefixtures("buy_at")
def test_a_time_exit_is_decided_alike_and_sold_at_the_same_price_at_alpaca(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    # Held two bars (F and G): the exit is decided on G's close and sold at market. The backtest fills
    # it at G + 1's open; at Alpaca it fills at once, at that price, and the session collects it in the
    # same cycle, so its fill is stamped G (docs: a live fill is stamped when it is collected).
    config, bars = _config(**AT_99, time_exit_bars=2), _bars({F: GAP_99})
    backtest = _backtest(config, bars)
    assert fills(backtest) == [(F, "entry", 99.0), (G + 1, "time_exit", 100.0)]
    live = _live_decisions(_live(alpaca_emulator, tmp_path, config, bars))
    collected = [
        (
            b - 1
            if k in ("fill", "position_closed") and f.get("reason", f.get("exit_reason")) == "time_exit"
            else b,
            k,
            f,
        )
        for b, k, f in backtest
        if b < len(TS) - 1
    ]
    assert live == collected


@pytest.mark.usefixtures("buy_at")
def test_a_resumed_session_counts_the_bars_an_entry_worked_before_the_restart(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    # The process stops after the entry has worked one bar (the 15:10 bar, seen at 15:15); the new one
    # counts that bar again from the log, so the gtc entry still expires after its third bar.
    risk, moves, _, cancels = CASES["gtc_expire_bars"]
    config, bars = _config(**risk), _bars(moves)
    live = _live_decisions(_live(alpaca_emulator, tmp_path, config, bars, restart_at="2024-07-08 15:15"))
    assert _cancels(live) == cancels
    assert live == [d for d in _backtest(config, bars) if d[0] < len(TS) - 1]


# A 1 % trailing stop after a limit entry that gaps in at 99.20 (bar F). Both trail from the best price
# seen since the protective was placed: the backtest from completed closes, Alpaca from every trade (its
# hwm). On bars whose high is no higher than the best close so far, the two levels agree.
TRAIL_IN = {F: (99.2, 99.4, 99.0, 99.4)}  # the entry fills at the open; the stop is placed at 99.40
TRAIL_AGREE = {
    **TRAIL_IN,
    G: (99.4, 101.0, 99.3, 101.0),  # closes at its high: both levels move to 101 x 0.99 = 99.99
    G + 1: (101.0, 101.0, 99.5, 99.8),  # falls through 99.99: both fill there
}
TRAIL_APART = {
    **TRAIL_IN,
    G: (99.4, 102.0, 99.3, 101.0),  # the high runs past the close: Alpaca's hwm is 102, its stop 100.98
    G + 1: (101.0, 101.0, 100.5, 100.6),  # Alpaca fills at 100.98; the backtest's level (99.99) holds
}


def _trail_config() -> BacktestConfig:
    return _config(entry_order="limit", tif="gtc", trail_pct=1.0)


def _as_trailing_stop(decisions: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The backtest's decisions with its protective OCO as Alpaca holds it: a trailing stop alone."""
    out = []
    for bar, kind, fields in decisions:
        if kind == "order_submitted" and fields["order_type"] == "oco":
            fields = {**fields, "order_type": "trailing_stop", "limit_price": None}
        out.append((bar, kind, fields))
    return out


def _rounded(decisions: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    # Alpaca computes its stop in decimals; the model in floats: equal to the hundredth of a cent.
    def cut(value: Any) -> Any:
        return round(value, 4) if isinstance(value, float) else value

    return [(bar, kind, {k: cut(v) for k, v in fields.items()}) for bar, kind, fields in decisions]


@pytest.mark.usefixtures("buy_at")
def test_a_percent_trailing_stop_rests_at_alpaca_and_fills_where_the_backtest_does(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    config, bars = _trail_config(), _bars(TRAIL_AGREE)
    backtest = _backtest(config, bars)
    assert [(b, r, round(p, 4)) for b, r, p in fills(backtest)] == [
        (F, "entry", 99.2),
        (G + 1, "stop_loss", 99.99),
    ]
    live = _live_decisions(_live(alpaca_emulator, tmp_path, config, bars))
    assert _rounded(live) == _rounded(_as_trailing_stop([d for d in backtest if d[0] < len(TS) - 1]))
    (trail,) = [o for o in alpaca_emulator.orders if o["type"] == "trailing_stop"]
    assert (trail["trail_percent"], trail["hwm"], trail["status"]) == ("1", "101", "filled")


@pytest.mark.usefixtures("buy_at")
def test_alpaca_trails_from_every_trade_so_a_high_past_the_close_raises_its_stop_above_the_backtests(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    # The documented difference (docs/live-trading.md): the backtest moves the level on completed closes
    # only; Alpaca's hwm follows the high, so its stop fills a bar the backtest's level does not reach.
    config, bars = _trail_config(), _bars(TRAIL_APART)
    backtest = fills(_backtest(config, bars))
    # the backtest's level (99.99) holds on G + 1 and is reached by the next quiet bar (low 99.80)
    assert [(b, r, round(p, 4)) for b, r, p in backtest] == [(F, "entry", 99.2), (G + 2, "stop_loss", 99.99)]
    live = fills(_live_decisions(_live(alpaca_emulator, tmp_path, config, bars)))
    assert [(b, r, round(p, 4)) for b, r, p in live] == [(F, "entry", 99.2), (G + 1, "stop_loss", 100.98)]


@pytest.mark.usefixtures("buy_at")
def test_a_take_profit_beside_a_native_trailing_stop_is_taken_on_a_completed_close_at_market(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    # Alpaca takes no trailing stop inside an OCO, so the target (99.20 x 1.01 = 100.19) is the
    # session's: bar G closes at 101, past it; the trailing stop is cancelled and the position sold at
    # market, at 101. The backtest's OCO takes the target intrabar at 100.19 (the documented difference).
    config = _config(entry_order="limit", tif="gtc", trail_pct=1.0, take_profit_pct=1.0)
    bars = _bars(TRAIL_AGREE)
    backtest = fills(_backtest(config, bars))
    assert [(b, r, round(p, 4)) for b, r, p in backtest] == [(F, "entry", 99.2), (G, "take_profit", 100.192)]
    live = fills(_live_decisions(_live(alpaca_emulator, tmp_path, config, bars)))
    assert live == [(F, "entry", 99.2), (G, "take_profit", 101.0)]
    (trail,) = [o for o in alpaca_emulator.orders if o["type"] == "trailing_stop"]
    assert trail["status"] == "canceled" and alpaca_emulator.positions.get(SYMBOL, 0) == 0


# An ATR trailing stop (2 x ATR(2)) after a limit entry that gaps in at 99.20 (bar F). ATR is 0.40 on
# quiet bars, so the stop starts 0.80 under the fill, at 98.40; each completed bar moves the level (a
# stop_moved) and the session replaces its stop at Alpaca at it, so both fill where the level stands.
ATR_RISE = {
    F: (99.2, 99.6, 99.2, 99.6),  # ATR 0.60: 99.60 - 1.20 = 98.40, the level holds (no replace)
    G: (99.6, 100.6, 99.6, 100.4),  # ATR 0.80: 100.40 - 1.60 = 98.80
    G + 1: (100.4, 101.2, 100.4, 101.0),  # ATR 0.80: 101.00 - 1.60 = 99.40
    G + 2: (101.0, 101.2, 100.8, 101.0),  # ATR 0.60: 101.00 - 1.20 = 99.80
}
ATR_CASES = {
    "through": ({**ATR_RISE, G + 3: (100.6, 100.7, 99.5, 99.7)}, 99.8),  # falls through: at the level
    "gap": ({**ATR_RISE, G + 3: (99.6, 99.9, 99.3, 99.5)}, 99.6),  # opens below it: at the open
}


def _as_replaced_stop(decisions: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The backtest's decisions with its protective OCO as Alpaca holds an ATR trail: a stop alone."""
    out = []
    for bar, kind, fields in decisions:
        if kind == "order_submitted" and fields["order_type"] == "oco":
            fields = {**fields, "order_type": "stop", "limit_price": None}
        out.append((bar, kind, fields))
    return out


@pytest.mark.usefixtures("buy_at")
@pytest.mark.parametrize("case", list(ATR_CASES))
def test_an_atr_trailing_stop_is_replaced_at_alpaca_as_its_level_moves_and_fills_where_the_backtests_does(
    case: str, alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    moves, price = ATR_CASES[case]
    config = _config(entry_order="limit", tif="gtc", trail_atr=2.0, atr_period=2)
    bars = _bars(moves)
    backtest = _backtest(config, bars)
    assert [(b, r, round(p, 4)) for b, r, p in fills(backtest)] == [
        (F, "entry", 99.2),
        (G + 3, "stop_loss", price),
    ]
    moved = [round(f["stop_price"], 4) for _, kind, f in backtest if kind == "stop_moved"]
    assert moved == [98.4, 98.8, 99.4, 99.8]
    live = _live_decisions(_live(alpaca_emulator, tmp_path, config, bars))
    assert _rounded(live) == _rounded(_as_replaced_stop([d for d in backtest if d[0] < len(TS) - 1]))
    stops = [o for o in alpaca_emulator.orders if o["side"] == "sell"]
    assert [(o["type"], o["stop_price"], o["status"]) for o in stops] == [
        ("stop", "98.4", "replaced"),
        ("stop", "98.8", "replaced"),
        ("stop", "99.4", "replaced"),
        ("stop", "99.8", "filled"),
    ]
    assert [o["replaces"] for o in stops[1:]] == [o["id"] for o in stops[:-1]]
    assert stops[-1]["filled_avg_price"] == f"{price:g}"


@pytest.mark.usefixtures("buy_at")
def test_a_refused_replace_is_made_again_by_the_next_look_up_before_the_next_bar_trades(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    # The first replace (to 98.80, after bar G) is refused (403): the old stop keeps working; the fill
    # poll that ends the same cycle finds it at 98.40 against the logged 98.80 and replaces it then.
    moves, price = ATR_CASES["through"]
    config = _config(entry_order="limit", tif="gtc", trail_atr=2.0, atr_period=2)
    alpaca_emulator.fail_next(1, 403, "/v2/orders/", "PATCH")  # a refusal: not retried
    live = fills(_live_decisions(_live(alpaca_emulator, tmp_path, config, _bars(moves))))
    assert not alpaca_emulator.faults._failures  # the refusal was answered
    assert [(b, r, round(p, 4)) for b, r, p in live] == [(F, "entry", 99.2), (G + 3, "stop_loss", price)]
    stops = [(o["stop_price"], o["status"]) for o in alpaca_emulator.orders if o["side"] == "sell"]
    assert stops == [("98.4", "replaced"), ("98.8", "replaced"), ("99.4", "replaced"), ("99.8", "filled")]


@pytest.mark.usefixtures("buy_at")
def test_a_restarted_session_moves_a_stop_whose_replace_never_reached_alpaca_before_its_first_cycle(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    # Both replaces to 98.80 in the 15:20 cycle (after bar G) are refused and the process stops after
    # it: the log says 98.80, Alpaca holds 98.40. The new process moves the stop while it starts (at
    # 15:20 New York, 19:20Z), not in its first cycle at 15:25, after the next bar has traded.
    moves, price = ATR_CASES["through"]
    config = _config(entry_order="limit", tif="gtc", trail_atr=2.0, atr_period=2)
    alpaca_emulator.fail_next(2, 403, "/v2/orders/", "PATCH")
    events = _live(alpaca_emulator, tmp_path, config, _bars(moves), restart_at="2024-07-08 15:20")
    live = fills(_live_decisions(events))
    assert [(b, r, round(p, 4)) for b, r, p in live] == [(F, "entry", 99.2), (G + 3, "stop_loss", price)]
    stops = {o["stop_price"]: o for o in alpaca_emulator.orders if o["side"] == "sell"}
    assert list(stops) == ["98.4", "98.8", "99.4", "99.8"]
    assert stops["98.8"]["created_at"] == "2024-07-08T19:20:00Z"


@pytest.mark.usefixtures("buy_at")
def test_a_take_profit_beside_a_replaced_atr_stop_cancels_its_newest_successor_and_sells_once(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    # Target 99.20 x 1.015 = 100.688. The stop has been replaced once (98.40 -> 98.80) when bar G + 1
    # closes at 101 past the target: the session cancels the stop Alpaca holds now (the successor) and
    # sells at market, at 101. The backtest's OCO takes the target intrabar at 100.688.
    config = _config(entry_order="limit", tif="gtc", trail_atr=2.0, atr_period=2, take_profit_pct=1.5)
    bars = _bars(ATR_RISE)
    backtest = fills(_backtest(config, bars))
    assert [(b, r, round(p, 4)) for b, r, p in backtest] == [
        (F, "entry", 99.2),
        (G + 1, "take_profit", 100.688),
    ]
    live = fills(_live_decisions(_live(alpaca_emulator, tmp_path, config, bars)))
    assert live == [(F, "entry", 99.2), (G + 1, "take_profit", 101.0)]
    sells = [(o["type"], o["stop_price"], o["status"]) for o in alpaca_emulator.orders if o["side"] == "sell"]
    assert sells == [("stop", "98.4", "replaced"), ("stop", "98.8", "canceled"), ("market", None, "filled")]
    assert alpaca_emulator.positions.get(SYMBOL, 0) == 0
