"""`tape bench startup`: how long the CLI takes to start, whole process, against the bare interpreter.

Each figure is the fastest of ``repeat`` runs (the least disturbed by other work on the machine):
``python -c pass`` (the floor no command can beat), ``tape --help`` into a pipe (the stored root
help, see ``cli/entry.py``), ``tape log --help`` (the whole command tree loaded and rendered), and
``tape verify`` of a log holding the demo backtest (written once, before the clock starts).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _tape() -> list[str]:
    """The `tape` console script beside this interpreter (what users run), else the module."""
    script = Path(sys.executable).with_name("tape")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tape.cli.entry"]


TAPE = _tape()


def _fastest(argv: list[str], *, cwd: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def bench_startup(*, repeat: int = 3) -> dict[str, Any]:
    """Seconds (fastest of ``repeat``) to run the bare interpreter, `tape --help` and `tape verify`."""
    with tempfile.TemporaryDirectory(prefix="tape-bench-") as tmp:
        where = Path(tmp)
        demo = [*TAPE, "backtest", "AAPL", "-s", "sma_cross", "-p", "short=5", "-p", "long=20", "--no-files"]
        subprocess.run(demo, cwd=where, check=True, capture_output=True, env={**os.environ, "NO_COLOR": "1"})
        python = _fastest([sys.executable, "-c", "pass"], cwd=where, repeat=repeat)
        help_ = _fastest([*TAPE, "--help"], cwd=where, repeat=repeat)
        tree = _fastest([*TAPE, "log", "--help"], cwd=where, repeat=repeat)
        verify = _fastest([*TAPE, "verify"], cwd=where, repeat=repeat)
    return {
        "repeat": repeat,
        "python_s": round(python, 3),
        "help_s": round(help_, 3),
        "verify_s": round(verify, 3),
        "tree_help_s": round(tree, 3),
        "tree_help_over_python": round(tree / python, 1),
        "help_over_python": round(help_ / python, 1),
        "verify_over_python": round(verify / python, 1),
        "load_average": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
