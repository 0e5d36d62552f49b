"""Stop entries and trailing stops of a crypto pair, traded live at the local Alpaca emulator through the
real alpaca-py clients, against the backtest on the same crafted bars.

Alpaca takes no stop and no trailing order for a pair (docs "Crypto Orders"), so the session does what
the model does with what Alpaca accepts (actors/live_session/crypto.py):

- a stop entry rests at Alpaca as a stop-limit ``--stop-band-bps`` beyond its stop: a price crossing the
  stop fills it at the stop, as the backtest's stop; a gap past the band leaves it resting as a limit
  (the backtest fills at the open);
- a trailing stop (percent, amount or ATR) is the session's own: its level moves on completed bars as
  in the backtest, and the completed bar whose low reaches it is sold at market, at about its close
  (the backtest sells at the level, on the same bar).

The bars are BTC/USD five-minute bars from 2024-03-04 09:30 UTC (six warm-up bars) to 11:55, inside one
UTC day; between two cycles the emulator trades through the bar that ended (emu.play_bar).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pytest

from tape.events.backtest import BacktestConfig, run_backtest
from tape.events.bars import BarSeries
from tape.events.costs import CostModel
from tape.events.schema import ActorStarted, BarReceived, CycleCompleted, Event
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
from tests.test_order_rules import SPEC, buy_at  # noqa: F401  (the fixture)
from tests.test_session import replay_session

PAIR = "BTC/USD"
FIRST = int(pd.Timestamp("2024-03-04 09:30", tz="UTC").value)
TS = np.arange(FIRST, FIRST + 30 * BAR_NS, BAR_NS, dtype=np.int64)
WARM_UP = 6  # 09:30 to 09:55: the live session warms up on them
SIGNAL = WARM_UP + 1  # BUY on the close of the 10:05 bar (close 100)
F, G = SIGNAL + 1, SIGNAL + 2  # the first and second bar an entry works
DECISIONS = ("order_submitted", "order_cancelled", "fill", "stop_moved")


def _bars(moves: Moves) -> BarSeries:
    return crafted_bars(PAIR, TS, moves)


def _config(**risk: Any) -> BacktestConfig:
    return one_entry_config(
        PAIR, SPEC, SIGNAL, CostModel(slippage_bps=0, commission=0, fee_bps=0, maker_fee_bps=0), **risk
    )


def _live(
    emulator: AlpacaEmulator,
    tmp_path: Path,
    config: BacktestConfig,
    bars: BarSeries,
    *,
    restart_after: int | None = None,
) -> list[Event]:
    """A live session on ``bars`` from 09:58 to the end of the last bar; its log. Each clock advance
    first trades every bar that has ended at the emulator. ``restart_after``: the process stops after
    the cycle that receives that bar and a new one resumes the run from the log."""
    emulator.set_crypto_fees(0, 0)
    venue = Venue(emulator, bars)
    stops = [int(TS[restart_after]) + BAR_NS] if restart_after is not None else []
    return run_live(
        venue,
        tmp_path / "tape.db",
        config,
        run_id="live-pair",
        start_ns=int(TS[WARM_UP]) - 2 * 60_000_000_000,
        until_ns=[*stops, int(TS[-1]) + BAR_NS],
        days_back=1,
    )


def _decisions(events: list[Event], bar_of: list[int]) -> list[tuple[Any, ...]]:
    """(bar index, kind, fields) of the order decisions, without ids and times."""
    out = []
    for event, bar in zip(events, bar_of, strict=True):
        if event_kind(event) not in DECISIONS or getattr(event, "reason", "") in ("end", "end of data"):
            continue
        fields = msgspec.structs.asdict(event)
        for drop in ("ts", "client_order_id", "intent_id", "exec_id", "strategy"):
            fields.pop(drop, None)
        fields = {k: round(v, 4) if isinstance(v, float) else v for k, v in fields.items()}
        out.append((bar, event_kind(event), fields))
    return out


def _backtest(config: BacktestConfig, bars: BarSeries) -> list[tuple[Any, ...]]:
    events = run_backtest(config, [bars], run_id="r")
    assert replay_session(config, [bars], "r") == events[1:-1]
    index = {int(t): k for k, t in enumerate(TS)}
    return _decisions(events, [index.get(getattr(e, "ts", -1), -1) for e in events])


def _live_decisions(events: list[Event]) -> list[tuple[Any, ...]]:
    """The live log's decisions, each at the bar of its cycle (the bar it received)."""
    index = {int(t): k for k, t in enumerate(TS)}
    bar_of, cycle, pending = [], [], -1
    for event in events:
        cycle.append(event)
        if isinstance(event, BarReceived):
            pending = index[event.ts]
        if isinstance(event, CycleCompleted):
            bar_of += [pending] * len(cycle)
            cycle, pending = [], -1
    bar_of += [-1] * len(cycle)
    return _decisions(events, bar_of)


def _sent(emulator: AlpacaEmulator) -> list[tuple[str, str, str | None, str | None]]:
    return [(o["side"], o["type"], o["stop_price"], o["limit_price"]) for o in emulator.orders]


@pytest.mark.usefixtures("buy_at")
def test_a_pairs_stop_entry_rests_at_alpaca_as_a_stop_limit_and_fills_at_its_stop_like_the_backtest(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    # stop 100.50 (0.5 % over the signal's close), limit 101.5 (1 % band): bar G rises through the
    # stop and fills there, in the backtest and at Alpaca
    config = _config(entry_order="stop", tif="gtc")
    bars = _bars({G: (100.0, 101.0, 99.9, 100.8)})
    backtest = _backtest(config, bars)
    assert fills(backtest) == [(G, "entry", 100.5)]
    live = _live_decisions(_live(alpaca_emulator, tmp_path, config, bars))
    as_sent = [
        (b, k, {**f, "order_type": "stop_limit", "limit_price": 101.5} if k == "order_submitted" else f)
        for b, k, f in backtest
        if b < len(TS) - 1
    ]
    assert live == as_sent
    assert _sent(alpaca_emulator) == [("buy", "stop_limit", "100.5", "101.5")]


@pytest.mark.usefixtures("buy_at")
def test_a_pairs_stop_entry_gapping_past_its_band_fills_later_at_its_limit_the_backtests_at_the_open(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    # bar F opens at 102, past the stop (100.50) and the band (101.5): the backtest's stop fills at
    # that open; Alpaca's stop-limit is elected but rests as a limit, filled when bar G trades back
    # down through 101.5 (the documented difference: a later bar, a better price)
    config = _config(entry_order="stop", tif="gtc")
    bars = _bars({F: (102.0, 102.5, 101.8, 102.2), G: (102.0, 102.1, 101.0, 101.2)})
    assert fills(_backtest(config, bars)) == [(F, "entry", 102.0)]
    live = _live_decisions(_live(alpaca_emulator, tmp_path, config, bars))
    assert fills(live) == [(G, "entry", 101.5)]


TRAILS = {
    # 1 % off the best close after a limit entry that gaps in at 99.20 (bar F): G closes at its high
    # (level 101 x 0.99 = 99.99); G + 1 falls through it to a low of 99.50 and closes at 99.80
    "percent": (
        {"trail_pct": 1.0},
        {F: (99.2, 99.4, 99.0, 99.4), G: (99.4, 101.0, 99.3, 101.0), G + 1: (101.0, 101.0, 99.5, 99.8)},
        [98.208, 98.406, 99.99],
        (G + 1, 99.99, 99.8),
    ),
    # 2 x ATR(2): the level steps 98.40, 98.80, 99.40, 99.80; G + 3 falls through 99.80 to 99.50 and
    # closes at 99.70
    "atr": (
        {"trail_atr": 2.0, "atr_period": 2},
        {
            F: (99.2, 99.6, 99.2, 99.6),
            G: (99.6, 100.6, 99.6, 100.4),
            G + 1: (100.4, 101.2, 100.4, 101.0),
            G + 2: (101.0, 101.2, 100.8, 101.0),
            G + 3: (100.6, 100.7, 99.5, 99.7),
        },
        [98.4, 98.4, 98.8, 99.4, 99.8],
        (G + 3, 99.8, 99.7),
    ),
}


@pytest.mark.usefixtures("buy_at")
@pytest.mark.parametrize("case", list(TRAILS))
def test_a_pairs_trailing_stop_is_watched_by_the_session_and_sold_at_market_on_the_bar_that_reaches_it(
    case: str, alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    trail, moves, levels, (bar, at_level, at_close) = TRAILS[case]
    config, bars = _config(entry_order="limit", tif="gtc", **trail), _bars(moves)
    backtest = _backtest(config, bars)
    assert fills(backtest) == [(F, "entry", 99.2), (bar, "stop_loss", at_level)]
    live = _live_decisions(_live(alpaca_emulator, tmp_path, config, bars))
    # the same level, placed at entry and moved on the same completed bars; the protective OCO is
    # logged (the session's own), never sent
    protective = [f for _, k, f in live if k == "order_submitted" and f["reason"] == "protective"]
    assert [(f["order_type"], f["stop_price"]) for f in protective] == [("oco", levels[0])]
    moved = [(b, f["stop_price"]) for b, k, f in live if k == "stop_moved"]
    assert moved == [(b, f["stop_price"]) for b, k, f in backtest if k == "stop_moved"]
    assert [level for _, level in moved] == levels[1:]
    # the documented difference: the same bar, sold at market at its close, not at the level
    assert fills(live) == [(F, "entry", 99.2), (bar, "stop_loss", at_close)]
    assert _sent(alpaca_emulator) == [("buy", "limit", None, "99.5"), ("sell", "market", None, None)]
    assert alpaca_emulator.positions.get(PAIR.replace("/", ""), 0) == 0


@pytest.mark.usefixtures("buy_at")
def test_a_resumed_session_keeps_watching_a_pairs_trailing_stop_from_the_log_and_sends_it_nothing(
    alpaca_emulator: AlpacaEmulator, tmp_path: Path
) -> None:
    # The process stops after the cycle that moved the level to 99.99 (bar G); the new one folds the
    # OCO and its level from the log, re-sends nothing for it, and sells on bar G + 1 as before.
    trail, moves, _, (bar, _, at_close) = TRAILS["percent"]
    config, bars = _config(entry_order="limit", tif="gtc", **trail), _bars(moves)
    events = _live(alpaca_emulator, tmp_path, config, bars, restart_after=G)
    assert [e.actor for e in events if isinstance(e, ActorStarted)] == ["portfolio", "portfolio"]
    live = _live_decisions(events)
    assert fills(live) == [(F, "entry", 99.2), (bar, "stop_loss", at_close)]
    assert _sent(alpaca_emulator) == [("buy", "limit", None, "99.5"), ("sell", "market", None, None)]
