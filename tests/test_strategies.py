"""Every registered strategy: the incremental form equals the vectorised one, it trades both ways,
and the registry refuses bad names and parameters with clear messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tape.events.errors import ConfigError
from tape.events.strategies import BUY, REGISTRY, SELL, make_strategy, param_specs
from tests.conftest import TapeRunner
from tests.factories import daily_bars, random_walk_bars

SIDES_STRATEGIES = sorted(n for n, c in REGISTRY.items() if c.output == "sides")  # signal strategies


@pytest.mark.parametrize("name", SIDES_STRATEGIES)
def test_live_sides_equal_vectorised_sides_on_10000_bars(name: str) -> None:
    bars = random_walk_bars("AAA", 10_000, seed=21)
    strategy = make_strategy(name)
    expected = strategy.signals(bars).side
    live = strategy.live()
    got = [
        live.on_bar(bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i])[0]
        for i in range(len(bars))
    ]
    assert np.array_equal(np.asarray(got, dtype=np.int8), expected)


@pytest.mark.parametrize("name", SIDES_STRATEGIES)
def test_live_values_equal_vectorised_values(name: str) -> None:
    bars = random_walk_bars("AAA", 2_000, seed=8)
    strategy = make_strategy(name)
    vector = strategy.signals(bars).values
    live = strategy.live()
    for i in range(len(bars)):
        _, values = live.on_bar(bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i])
        for key, column in vector.items():
            a, b = values[key], column[i]
            assert (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-9 * max(1.0, abs(b)), (key, i)


@pytest.mark.parametrize("name", SIDES_STRATEGIES)
def test_every_strategy_buys_and_sells_on_a_random_walk(name: str) -> None:
    side = make_strategy(name).signals(random_walk_bars("AAA", 2_000, seed=4)).side
    assert (side == BUY).any() and (side == SELL).any()


@pytest.mark.parametrize("name", SIDES_STRATEGIES)
def test_no_signal_before_the_warmup(name: str) -> None:
    strategy = make_strategy(name)
    side = strategy.signals(random_walk_bars("AAA", 500, seed=6)).side
    assert not side[: strategy.warmup() - 1].any()


def test_rsi_buys_on_the_bar_it_falls_below_oversold() -> None:
    closes = [100.0 + (i % 2) * 0.5 for i in range(20)] + [99.0, 97.0, 95.0, 93.0, 91.0]
    side = make_strategy("rsi").signals(daily_bars("AAA", closes)).side
    assert side[20:].tolist().count(BUY) == 1 and side[:20].tolist().count(BUY) == 0


def test_macd_buys_when_a_downtrend_turns_up() -> None:
    closes = list(np.linspace(120, 100, 60)) + list(np.linspace(100, 130, 40))
    side = make_strategy("macd").signals(daily_bars("AAA", closes)).side
    first_buy = int(np.flatnonzero(side == BUY)[0])
    assert 60 <= first_buy <= 70


def test_mean_reversion_buys_the_stretch_and_sells_the_mean() -> None:
    closes = [100.0 + 0.3 * ((-1) ** i) for i in range(30)] + [97.0, 100.5]
    side = make_strategy("mean_reversion").signals(daily_bars("AAA", closes)).side
    assert side[30] == BUY and side[31] == SELL


def test_atr_breakout_buys_a_jump_of_two_atrs() -> None:
    closes = [100.0 + 0.2 * ((-1) ** i) for i in range(20)] + [103.0]
    side = make_strategy("atr_breakout").signals(daily_bars("AAA", closes)).side
    assert side[20] == BUY and not side[:20].any()


def test_an_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigError,
        match="known strategies: atr_breakout, ensemble, inverse_vol, macd, mean_reversion, momentum, rsi, "
        "sma_cross",
    ):
        make_strategy("magic")


@pytest.mark.parametrize(
    ("name", "params", "needle"),
    [
        ("rsi", {"oversold": "80"}, "oversold (80) must be below overbought (70)"),
        ("macd", {"fast": "30"}, "fast (30) must be less than slow (26)"),
        ("mean_reversion", {"k": "0"}, "k"),
        ("atr_breakout", {"period": "x"}, "period"),
        ("sma_cross", {"speed": "1"}, "unknown parameter 'speed'"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(name: str, params: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        make_strategy(name, params)


def test_every_parameter_is_typed_described_and_numbers_are_bounded() -> None:
    for cls in REGISTRY.values():
        for spec in param_specs(cls):
            assert spec.type in {"int", "float", "str", "bool"} and spec.description
            if spec.type in {"int", "float"}:
                assert spec.minimum is not None or spec.maximum is not None


def test_tape_strategies_lists_names_parameters_and_descriptions(tape: TapeRunner) -> None:
    result = tape("strategies", "--json")
    assert result.returncode == 0, result.stderr
    listed = {s["name"]: s for s in json.loads(result.stdout)}
    assert set(listed) == set(REGISTRY)
    rsi = {p["name"]: p for p in listed["rsi"]["parameters"]}
    assert (rsi["period"]["default"], rsi["oversold"]["default"], rsi["overbought"]["default"]) == (
        14,
        30.0,
        70.0,
    )
    assert listed["macd"]["description"]
