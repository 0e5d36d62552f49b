"""Monte Carlo: seeded, chunk-independent, and equal to a direct numpy computation."""

from __future__ import annotations

import numpy as np
import pytest

from tape.events.errors import ConfigError
from tape.events.montecarlo import BLOCK, simulate_trades, verdict

PNLS = np.array([120.0, -80.0, 45.0, -30.0, 200.0])


def test_the_same_seed_gives_the_same_result() -> None:
    assert simulate_trades(PNLS, start_equity=1000, n=300, seed=4) == simulate_trades(
        PNLS, start_equity=1000, n=300, seed=4
    )


def test_another_seed_gives_other_paths() -> None:
    a = simulate_trades(PNLS, start_equity=1000, n=300, seed=4)
    b = simulate_trades(PNLS, start_equity=1000, n=300, seed=5)
    assert a.max_drawdown_pct != b.max_drawdown_pct


def test_shuffling_keeps_the_final_return() -> None:
    result = simulate_trades(PNLS, start_equity=1000, n=500, seed=1, method="shuffle")
    assert result.final_return_pct["p5"] == pytest.approx(25.5) == result.final_return_pct["p95"]


def test_the_default_method_is_bootstrap_whose_returns_vary() -> None:
    result = simulate_trades(PNLS, start_equity=1000, n=500, seed=1)
    assert result.method == "bootstrap"
    assert result.final_return_pct["p5"] < 25.5 < result.final_return_pct["p95"]


def test_a_shuffle_is_read_for_its_drawdowns_not_its_return() -> None:
    reading = verdict(simulate_trades(-PNLS, start_equity=1000, n=500, seed=1, method="shuffle"))
    assert reading.startswith("drawdown risk:") and "use bootstrap to judge the return" in reading
    assert "fragile" not in reading and "lose" not in reading


def test_a_losing_bootstrap_is_called_fragile() -> None:
    reading = verdict(simulate_trades(-PNLS, start_equity=100_000, n=500, seed=1))
    assert reading.startswith("fragile:")


def test_statistics_match_a_direct_numpy_computation_on_a_small_case() -> None:
    n, start, seed = 200, 1000.0, 9
    result = simulate_trades(PNLS, start_equity=start, n=n, seed=seed, method="bootstrap")
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    picks = rng.integers(0, PNLS.size, size=(n, PNLS.size))
    finals, drawdowns = [], []
    for row in picks:  # one path at a time, the slow obvious way
        equity = [start]
        for i in row:
            equity.append(equity[-1] + PNLS[i])
        peak, worst = equity[0], 0.0
        for value in equity:
            peak = max(peak, value)
            worst = max(worst, (peak - value) / peak)
        finals.append((equity[-1] / start - 1) * 100)
        drawdowns.append(worst * 100)
    assert result.final_return_pct["p50"] == pytest.approx(np.percentile(finals, 50))
    assert result.final_return_pct["mean"] == pytest.approx(np.mean(finals))
    assert result.max_drawdown_pct["p95"] == pytest.approx(np.percentile(drawdowns, 95))
    assert result.prob_loss == pytest.approx(np.mean(np.array(finals) < 0))


def test_ray_workers_give_the_same_numbers_as_one_process(ray_session: None) -> None:
    from tape.actors.jobs import run_montecarlo

    n = 2 * BLOCK + 7  # three blocks, spread over the workers
    local = simulate_trades(PNLS, start_equity=1000, n=n, seed=2, method="bootstrap")
    remote = run_montecarlo(PNLS, start_equity=1000, n=n, seed=2, method="bootstrap", ruin_drawdown_pct=50.0)
    assert remote == local


@pytest.mark.parametrize(
    ("pnls", "n", "method"), [(np.array([]), 10, "shuffle"), (PNLS, 0, "shuffle"), (PNLS, 10, "dice")]
)
def test_bad_input_is_refused(pnls: np.ndarray, n: int, method: str) -> None:
    with pytest.raises(ConfigError):
        simulate_trades(pnls, start_equity=1000, n=n, method=method)  # type: ignore[arg-type]
