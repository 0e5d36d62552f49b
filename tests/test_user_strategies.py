"""A user's own strategy, written in a file outside the repository: loaded by every command, its
missing form derived, proven honest by `tape check`, recorded with its origin and source hash, shipped
to Ray workers, and its failures shown as the user's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tape.events.strategies import REGISTRY, make_strategy
from tape.store.log import EventLog
from tape.store.market import load_many
from tape.store.strategy_check import check_strategy
from tape.store.strategy_loader import load_strategy
from tests.conftest import REPO, TapeRunner, assert_clean_failure

WINDOW = ("--start", "2010-01-01", "--end", "2010-12-31")

VECTORISED = '''
import msgspec
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tape import BUY, SELL, SignalSeries, Strategy


class Donchian(Strategy):
    """Breakout of the previous N bars' channel."""

    class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
        window: int = 20

    def warmup(self):
        return self.params.window + 1

    def signals(self, bars):
        n, w = len(bars.close), self.params.window
        upper, lower = np.full(n, np.nan), np.full(n, np.nan)
        if n > w:
            upper[w:] = sliding_window_view(bars.high, w)[:-1].max(axis=1)
            lower[w:] = sliding_window_view(bars.low, w)[:-1].min(axis=1)
        side = np.zeros(n, dtype=np.int8)
        side[bars.close > upper] = BUY
        side[bars.close < lower] = SELL
        return SignalSeries(side, {"upper": upper, "lower": lower})
'''

INCREMENTAL = '''
from collections import deque

import msgspec

from tape import BUY, HOLD, SELL, Strategy


class DonchianSteps(Strategy):
    """The same breakout, one bar at a time."""

    class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
        window: int = 20

    def warmup(self):
        return self.params.window + 1

    def start(self):
        self.highs = deque(maxlen=self.params.window)
        self.lows = deque(maxlen=self.params.window)

    def on_bar(self, bar):
        side = HOLD
        if len(self.highs) == self.params.window:
            if bar.close > max(self.highs):
                side = BUY
            elif bar.close < min(self.lows):
                side = SELL
        self.highs.append(bar.high)
        self.lows.append(bar.low)
        return side
'''

PEEKS = """
import numpy as np
from tape import BUY, SELL, Strategy

class Peeks(Strategy):
    def warmup(self):
        return 1
    def signals(self, bars):
        side = np.zeros(len(bars), dtype=np.int8)
        up = bars.close[1:] > bars.close[:-1]          # close[i + 1] decides bar i
        side[:-1] = np.where(up, BUY, SELL)
        side[:-1][np.arange(len(up)) < 30] = 0
        return side
"""

DISAGREES = """
import numpy as np
from tape import BUY, HOLD, Strategy

class TwoMinds(Strategy):
    def warmup(self):
        return 1
    def signals(self, bars):
        side = np.zeros(len(bars), dtype=np.int8)
        side[50::100] = BUY
        return side
    def on_bar(self, bar):
        return HOLD
"""

NONDETERMINISTIC = """
import numpy as np
from tape import BUY, Strategy

class Dice(Strategy):
    def warmup(self):
        return 1
    def signals(self, bars):
        side = np.zeros(len(bars), dtype=np.int8)
        side[np.random.default_rng().random(len(bars)) < 0.05] = BUY
        return side
"""

EARLY = """
import numpy as np
from tape import BUY, Strategy

class Eager(Strategy):
    def warmup(self):
        return 50
    def signals(self, bars):
        side = np.zeros(len(bars), dtype=np.int8)
        side[10] = BUY
        return side
"""


def _write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory outside the repository holding the user's strategy files."""
    return tmp_path_factory.mktemp("mine")


def _run_ids(log: Path) -> list[str]:
    with EventLog.open(log, readonly=True) as opened:
        return [e.run_id for e in (r.event for r in opened.read()) if type(e).__name__ == "RunStarted"]


def _events(log: Path) -> list[object]:
    if not log.exists():
        return []
    with EventLog.open(log, readonly=True) as opened:
        return [r.event for r in opened.read()]


# --------------------------------------------------------------------------- both forms, every command


@pytest.mark.parametrize(("file", "source"), [("vec.py", VECTORISED), ("inc.py", INCREMENTAL)])
def test_a_one_form_strategy_file_runs_through_every_command(
    tape: TapeRunner, outside: Path, tmp_path: Path, ray_session: None, file: str, source: str
) -> None:
    path = str(_write(outside, file, source))
    steps = [
        ("backtest", "AAPL", "--strategy", path, *WINDOW, "--no-files"),
        ("optimize", "AAPL", "--strategy", path, "--grid", "window=10,20", *WINDOW),
        (
            "walkforward",
            "AAPL",
            "--strategy",
            path,
            "--grid",
            "window=10,20",
            "--start",
            "2008-01-01",
            "--end",
            "2010-12-31",
            "--folds",
            "2",
        ),
        ("validate", "AAPL", "MSFT", "--strategy", path, "--start", "2008-01-01", "--end", "2010-12-31"),
        ("trade", "AAPL", "--strategy", path, "--broker", "sim", "--feed", "replay", *WINDOW),
    ]
    for args in steps:
        result = tape(*args)
        assert result.returncode == 0, (args[0], result.stderr[-1500:])
    started = [e for e in _events(tmp_path / "tape.db") if type(e).__name__ == "RunStarted"]
    origin = started[0].config["strategy_origin"]
    assert origin["kind"] == "file" and origin["location"] == path
    assert origin["check"] == "quick check passed"


def test_the_derived_forms_equal_the_written_ones_on_the_bundled_data(outside: Path) -> None:
    vec = load_strategy(str(_write(outside, "v.py", VECTORISED))).spec
    inc = load_strategy(str(_write(outside, "i.py", INCREMENTAL))).spec
    for bars in load_many(["AAPL", "GOOG", "IBM", "MSFT"], dataset="sample"):
        bars = bars.take(0, 400)
        written_vec = make_strategy(vec).signals(bars).side
        derived_live = make_strategy(vec).live()  # vectorised re-evaluated bar by bar
        stepped = [
            derived_live.on_bar(
                *(float(c[i]) for c in (bars.open, bars.high, bars.low, bars.close, bars.volume))
            )[0]
            for i in range(len(bars))
        ]
        assert np.array_equal(np.asarray(stepped, dtype=np.int8), written_vec)
        derived_vec = make_strategy(inc).signals(bars).side  # incremental stepped through the bars
        assert np.array_equal(derived_vec, written_vec)  # the two routes are one rule
        assert (written_vec != 0).any()


# --------------------------------------------------------------------------- tape check


@pytest.mark.parametrize(
    ("source", "check", "bar"),
    [
        (PEEKS, "no look-ahead FAIL", "bar 30"),
        (DISAGREES, "vectorised == incremental FAIL", "bar 50"),
        (NONDETERMINISTIC, "deterministic", "bar "),
        (EARLY, "no signal in warm-up FAIL", "bar 10"),
    ],
    ids=["peeks", "forms-disagree", "nondeterministic", "signals-in-warmup"],
)
def test_check_fails_a_broken_strategy_naming_its_first_bad_bar(
    tape: TapeRunner, outside: Path, source: str, check: str, bar: str
) -> None:
    path = _write(outside, "broken.py", source)
    result = tape("check", str(path), "--symbol", "AAPL")
    assert result.returncode == 1, result.stdout
    name = check.removesuffix(" FAIL")
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL") and name in line]
    assert failed and f"AAPL {bar}" in failed[0], result.stdout


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_built_in_passes_check(name: str) -> None:
    results = check_strategy(name, symbols=["AAPL", "MSFT"])
    assert all(r.passed for r in results), [r for r in results if not r.passed]


def test_a_backtest_refuses_a_strategy_that_fails_the_quick_check(
    tape: TapeRunner, outside: Path, tmp_path: Path
) -> None:
    path = _write(outside, "peeks.py", PEEKS)
    result = tape("backtest", "AAPL", "--strategy", str(path), *WINDOW, "--no-files")
    assert_clean_failure(result, "refused by the quick check", "no look-ahead failed", "AAPL bar 30")
    assert result.returncode == 1
    assert _events(tmp_path / "tape.db") == []
    skipped = tape("backtest", "AAPL", "--strategy", str(path), *WINDOW, "--no-files", "--no-check")
    assert skipped.returncode == 0, skipped.stderr
    started = [e for e in _events(tmp_path / "tape.db") if type(e).__name__ == "RunStarted"]
    assert started[0].config["strategy_origin"]["check"] == "skipped (--no-check)"


# --------------------------------------------------------------------------- reproducible and auditable


def test_an_edit_is_a_new_run_and_rerun_names_the_code_change(
    tape: TapeRunner, outside: Path, tmp_path: Path
) -> None:
    path = _write(outside, "d.py", VECTORISED)
    first = tape("backtest", "AAPL", "--strategy", str(path), *WINDOW, "--no-files", "--json")
    assert first.returncode == 0, first.stderr
    run_id = json.loads(first.stdout)["run_id"]
    path.write_text(path.read_text().replace("window: int = 20", "window: int = 15"))
    rerun = tape("replay", run_id, "--rerun")
    assert rerun.returncode == 0, rerun.stderr
    assert "strategy code changed since the run: hash" in rerun.stderr
    assert "re-running the code stored with the run" in rerun.stderr and "identical" in rerun.stdout
    again = tape("backtest", "AAPL", "--strategy", str(path), *WINDOW, "--no-files", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["run_id"] != run_id
    assert len(_run_ids(tmp_path / "tape.db")) == 2


# --------------------------------------------------------------------------- the user's failures


RAISES = VECTORISED.replace(
    "        side = np.zeros(n, dtype=np.int8)\n",
    "        side = np.zeros(n, dtype=np.int8)\n        side[0] = 1 // 0\n",
)


@pytest.mark.parametrize(
    ("source", "suffix", "needles", "code"),
    [
        (None, "", ["strategy file not found", "nowhere.py"], 2),
        ("class Broken(:\n", "", ["syntax error in", "bad.py:1"], 2),
        ("X = 1\n", "", ["defines no strategy"], 2),
        (
            VECTORISED + INCREMENTAL.replace("from collections", "from collections"),
            "",
            ["defines 2 strategies (Donchian, DonchianSteps); name one"],
            2,
        ),
        (VECTORISED.replace("window: int = 20", "window: set[object] = set()"), "", ["bad Params"], 2),
    ],
    ids=["missing-file", "syntax-error", "no-subclass", "two-candidates", "bad-params"],
)
def test_a_strategy_that_cannot_load_fails_cleanly_and_writes_nothing(
    tape: TapeRunner,
    outside: Path,
    tmp_path: Path,
    source: str | None,
    suffix: str,
    needles: list[str],
    code: int,
) -> None:
    path = outside / ("nowhere.py" if source is None else "bad.py")
    if source is not None:
        path.write_text(source)
    result = tape("backtest", "AAPL", "--strategy", str(path) + suffix, *WINDOW, "--no-files")
    assert_clean_failure(result, *needles)
    assert result.returncode == code
    assert _events(tmp_path / "tape.db") == []


def test_an_exception_mid_run_names_the_users_line_and_logs_only_a_failed_run(
    tape: TapeRunner, outside: Path, tmp_path: Path
) -> None:
    path = _write(outside, "raises.py", RAISES)
    result = tape("backtest", "AAPL", "--strategy", str(path), *WINDOW, "--no-files", "--no-check")
    assert_clean_failure(result, "ZeroDivisionError", f"{path}:", "side[0] = 1 // 0")
    assert result.returncode == 1
    assert "tape/" not in result.stderr.replace(str(path), "")  # their lines only, not tape's internals
    events = _events(tmp_path / "tape.db")
    assert [type(e).__name__ for e in events] == ["RunStarted", "RunEnded"]
    assert events[1].status == "failed" and "ZeroDivisionError" in events[1].message


# --------------------------------------------------------------------------- Ray cluster


def test_a_cluster_sweep_runs_a_strategy_file_that_only_the_driver_had(outside: Path, tmp_path: Path) -> None:
    path = _write(outside, "driver_only.py", VECTORISED)
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"}
    run = subprocess.run(
        [sys.executable, str(REPO / "tests" / "cluster_user_strategy.py"), str(path), str(tmp_path / "c.db")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert not path.exists()
    clustered = json.loads(run.stdout.strip().splitlines()[-1])
    assert clustered["nodes"] == 2 and len(clustered["ranked"]) == 4
    assert {r["params"]["window"] for r in clustered["ranked"]} == {10, 20, 30, 40}


# --------------------------------------------------------------------------- the live engine

FRAGILE = '''
import os

from tape import HOLD, Strategy


class Fragile(Strategy):
    """Holds, until the test lays a trap for it."""

    def warmup(self):
        return 1

    def on_bar(self, bar):
        if os.path.exists({boom!r}):
            raise RuntimeError("the user's bug")
        return HOLD
'''


def test_a_strategy_raising_in_the_engine_stops_only_its_session_with_an_alert(
    tape: TapeRunner, alpaca_emulator: object, tmp_path: Path, outside: Path
) -> None:
    from tests.engine_driver import EngineDriver

    engine = EngineDriver(tape, alpaca_emulator, tmp_path, begin="2024-07-03 09:00")  # type: ignore[arg-type]
    boom = outside / "boom"
    path = _write(outside, "fragile.py", FRAGILE.format(boom=str(boom)))
    try:
        engine.up()
        engine.spawn("AAPL")
        spawned = engine.run("spawn", "MSFT", str(path), "--days-back", "3", "--json")
        engine.runs["MSFT"] = fragile_run = json.loads(spawned.stdout)["run_id"]
        engine.step()
        boom.write_text("")
        ts = engine.next_cycle()
        engine.advance(ts)
        engine.wait_for_cycle(ts, ["AAPL"])
        deadline = time.monotonic() + 120
        while not (stopped := [r.event for r in engine.events("engine", "session_stopped")]):
            assert time.monotonic() < deadline, "the fragile session was not stopped"
            time.sleep(0.1)  # polling the log: the engine is another process
        assert [s.symbol for s in stopped] == ["MSFT"]
        assert "RuntimeError: the user's bug" in stopped[0].reason and f"{path}:" in stopped[0].reason
        alerts = [r.event for r in engine.events(f"run/{fragile_run}", "alert")]
        assert [(a.rule, a.severity) for a in alerts] == [("strategy_error", "critical")]
        del engine.runs["MSFT"]
        engine.step()
        engine.step()  # AAPL goes on trading
        sessions = {s["symbol"]: s["state"] for s in engine.status()["sessions"]}
        assert sessions == {"AAPL": "running"}
        engine.down()
    finally:
        engine.kill_everything()


# --------------------------------------------------------------------------- modules and entry points


def _installed_package(root: Path) -> dict[str, str]:
    """A package `mystrats` with an installed distribution's metadata publishing `donchian` in the
    tape.strategies entry-point group (what `pip install` of a strategy package leaves behind)."""
    (root / "mystrats").mkdir()
    (root / "mystrats" / "__init__.py").write_text("")
    (root / "mystrats" / "breakout.py").write_text(textwrap.dedent(VECTORISED))
    info = root / "mystrats-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mystrats\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tape.strategies]\ndonchian = mystrats.breakout:Donchian\n")
    return {"PYTHONPATH": os.pathsep.join([str(root), str(REPO)])}


def test_strategies_lists_built_ins_and_entry_points_with_their_origin(
    tape: TapeRunner, outside: Path
) -> None:
    env = _installed_package(outside)
    listed = {row["name"]: row for row in json.loads(tape("strategies", "--json", env=env).stdout)}
    assert {listed[name]["origin"] for name in REGISTRY} == {"built-in"}
    assert listed["donchian"]["origin"] == "entry point"
    assert listed["donchian"]["location"].startswith("mystrats: mystrats.breakout:Donchian")


@pytest.mark.parametrize("strategy", ["donchian", "mystrats.breakout:Donchian"])
def test_an_entry_point_or_a_module_backtests_by_name(
    tape: TapeRunner, outside: Path, tmp_path: Path, strategy: str
) -> None:
    env = _installed_package(outside)
    result = tape("backtest", "AAPL", "--strategy", strategy, *WINDOW, "--no-files", env=env)
    assert result.returncode == 0, result.stderr
    started = [e for e in _events(tmp_path / "tape.db") if type(e).__name__ == "RunStarted"]
    origin = started[0].config["strategy_origin"]
    assert origin["kind"] == ("entry point" if strategy == "donchian" else "module")
    assert origin["class"] == "Donchian" and len(origin["sha256"]) == 64


def test_an_exception_in_a_ray_sweep_is_shown_once_at_the_users_line_and_logs_nothing(
    tape: TapeRunner, outside: Path, tmp_path: Path
) -> None:
    path = _write(outside, "raises.py", RAISES)
    grid = ("--grid", "window=10,20,30,40")
    result = tape("optimize", "AAPL", "--strategy", str(path), *grid, *WINDOW, "--no-check")
    assert_clean_failure(result, "your strategy raised ZeroDivisionError", f"{path}:", "side[0] = 1 // 0")
    assert result.returncode == 1
    assert _events(tmp_path / "tape.db") == []


def test_check_passes_a_built_in_from_the_cli_with_one_line_per_check(tape: TapeRunner) -> None:
    result = tape("check", "sma_cross", "--symbol", "AAPL", "--param", "short=10", "--param", "long=30")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [
        "pass  no look-ahead",
        "pass  vectorised == incremental",
        "pass  deterministic, no signal in warm-up",
        "pass  output contract",
    ]


def test_new_strategy_writes_a_template_that_passes_check_and_refuses_to_overwrite(
    tape: TapeRunner, tmp_path: Path
) -> None:
    made = tape("new", "strategy", "my_breakout")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "my_breakout.py").is_file()
    commands = [line.strip() for line in made.stdout.splitlines()[1:]]
    assert [c.split()[:2] for c in commands] == [
        ["tape", "check"],
        ["tape", "backtest"],
        ["tape", "optimize"],
    ]
    checked = tape("check", "my_breakout.py", "--symbol", "AAPL")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert_clean_failure(tape("new", "strategy", "my_breakout"), "my_breakout.py exists")
