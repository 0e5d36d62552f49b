"""Shared fixtures. Ray tests share one local Ray instance per session (see `ray_session`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.alpaca_emulator import AlpacaEmulator

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    """A path for a fresh event log inside the test's temporary directory."""
    return tmp_path / "tape.db"


TapeRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def tape(tmp_path: Path) -> TapeRunner:
    """Run the real `tape` command in a subprocess, cwd = the test's tmp dir."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        full_env = {
            **os.environ,
            "TAPE_LOG": str(tmp_path / "tape.db"),
            "TAPE_DATA": str(tmp_path / "tape-data.db"),
        }
        full_env.pop("TAPE_DEBUG", None)
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "tape.cli.app", *args],
            cwd=tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def assert_clean_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A user error: non-zero exit, one line on stderr naming the problem, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def alpaca_emulator() -> Iterator[AlpacaEmulator]:
    """A running local Alpaca emulator (REST + WebSockets) for the real alpaca-py clients."""
    with AlpacaEmulator() as emulator:
        yield emulator
    assert not emulator.internal_errors, "\n".join(emulator.internal_errors)


@pytest.fixture
def trading_emulator(alpaca_emulator: AlpacaEmulator) -> AlpacaEmulator:
    """The emulator with AAPL at 100 and MSFT at 50, ready to trade."""
    alpaca_emulator.set_price("AAPL", 100.0)
    alpaca_emulator.set_price("MSFT", 50.0)
    return alpaca_emulator


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One small local Ray instance shared by every Ray test of the session (2 cores here)."""
    from tape.actors.jobs import ensure_ray

    ray = ensure_ray(num_cpus=2)
    yield
    ray.shutdown()
