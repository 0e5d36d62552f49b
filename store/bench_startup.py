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
from pathlib import Path
from typing import Any

from tape.store.bench_process import fastest_pair


def _tape() -> list[str]:
    """The `tape` console script beside this interpreter (what users run), else the module."""
    script = Path(sys.executable).with_name("tape")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tape.cli.entry"]


TAPE = _tape()


def _fastest(argv: list[str], *, cwd: Path, repeat: int) -> tuple[float, float]:
    """(wall, CPU) seconds of ``argv``: each the least of ``repeat`` runs."""
    best = fastest_pair(argv, None, cwd=cwd, repeat=repeat)[0]
    return best.seconds, best.cpu_s


def bench_startup(*, repeat: int = 3) -> dict[str, Any]:
    """Seconds (fastest of ``repeat``) to run the bare interpreter, `tape --help` and `tape verify`."""
    with tempfile.TemporaryDirectory(prefix="tape-bench-") as tmp:
        where = Path(tmp)
        demo = [*TAPE, "backtest", "AAPL", "-s", "sma_cross", "-p", "short=5", "-p", "long=20", "--no-files"]
        subprocess.run(demo, cwd=where, check=True, capture_output=True, env={**os.environ, "NO_COLOR": "1"})
        python, python_cpu = _fastest([sys.executable, "-c", "pass"], cwd=where, repeat=repeat)
        help_, help_cpu = _fastest([*TAPE, "--help"], cwd=where, repeat=repeat)
        tree, tree_cpu = _fastest([*TAPE, "log", "--help"], cwd=where, repeat=repeat)
        verify, verify_cpu = _fastest([*TAPE, "verify"], cwd=where, repeat=repeat)
    return {
        "repeat": repeat,
        "python_s": round(python, 3),
        "help_s": round(help_, 3),
        "verify_s": round(verify, 3),
        "tree_help_s": round(tree, 3),
        "tree_help_over_python": round(tree / python, 1),
        "help_over_python": round(help_ / python, 1),
        "cpu_s": {
            "python": round(python_cpu, 3),
            "help": round(help_cpu, 3),
            "tree_help": round(tree_cpu, 3),
            "verify": round(verify_cpu, 3),
        },
        "verify_over_python": round(verify / python, 1),
        "load_average": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
