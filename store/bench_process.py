"""Whole-process timing for the benches: wall seconds and peak RSS of one child, min of N runs.

Each figure is the command's own: a small launcher process forks it and reads ``os.wait4``'s usage of
exactly that process (peak resident set ``ru_maxrss``, CPU seconds). The launcher is there because a
forked child's ``ru_maxrss`` starts from its parent's resident memory: forked by the bench itself,
which holds the bars it generated, every command would report at least the bench's size. A/B pairs are run
interleaved (A, B, A, B, ...) so both see the same load on a shared machine; the fastest run of each
counts (the least disturbed), and its memory is the lowest peak seen. Memory is the larger of the
child's own peak RSS and the sampled peak of its whole process tree's summed RSS (when psutil is
installed: it comes with the ``bench`` extra).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from tape.events.errors import TapeError

PEER_SCRIPTS = Path(__file__).parent


@dataclass(frozen=True)
class ProcessRun:
    """The fastest of a command's runs: wall seconds, peak RSS (MB), that run's standard output, and
    CPU seconds (user + system of the process and the children it waited for: less disturbed by a
    busy machine than wall time, but blind to processes it did not wait for, such as Ray's)."""

    seconds: float
    peak_mb: float
    stdout: str
    cpu_s: float = 0.0


# Runs the command and writes its own wait4 figures: a child's ru_maxrss starts from the memory of the
# process that forked it, so the command is forked by this small launcher, not by the (large) bench.
_LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    cpu = usage.ru_utime + usage.ru_stime
    out.write(f"{os.waitstatus_to_exitcode(status)} {seconds} {usage.ru_maxrss} {cpu}")
"""


def run_process(argv: Sequence[str], *, cwd: Path, fresh: Path | None = None) -> ProcessRun:
    """Run ``argv`` to its end; raise naming the command if it fails. ``fresh`` (a log file) is
    deleted first, with its WAL, so every run starts as the first did."""
    if fresh is not None:
        for path in (fresh, fresh.with_name(fresh.name + "-wal"), fresh.with_name(fresh.name + "-shm")):
            path.unlink(missing_ok=True)
    out_path, err_path, figures = cwd / ".bench-stdout", cwd / ".bench-stderr", cwd / ".bench-figures"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        launcher = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(figures), *argv], cwd=cwd, stdout=out, stderr=err
        )
        sampler = _TreeMemory(launcher.pid)
        launcher.wait()
        sampler.stop()
    code, seconds, maxrss_kb, cpu = figures.read_text().split()
    if launcher.returncode != 0 or int(code) != 0:
        stderr = err_path.read_text(errors="replace").strip()[-400:]
        raise TapeError(f"bench command failed ({' '.join(argv[:4])} ...): {stderr}")
    # ru_maxrss is the largest single process's peak (exact); the sampled sum covers a process tree
    # (tape's log writer runs beside the backtest) at 50 ms resolution.
    peak = max(int(maxrss_kb) * 1024, sampler.peak_bytes) / 2**20
    return ProcessRun(float(seconds), peak, out_path.read_text(), float(cpu))


class _TreeMemory:
    """Samples the summed RSS of a launcher's descendants (not the launcher) on a thread (needs
    psutil; else 0)."""

    def __init__(self, pid: int) -> None:
        self.peak_bytes = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(pid,), daemon=True)
        self._thread.start()

    def _sample(self, pid: int) -> None:
        try:
            import psutil
        except ImportError:
            return
        try:
            root = psutil.Process(pid)
            while not self._done.wait(0.05):
                total = 0
                for proc in root.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        total += proc.memory_info().rss
                self.peak_bytes = max(self.peak_bytes, total)
        except psutil.Error:
            return  # the process ended between two samples

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def fastest_pair(
    first: Sequence[str],
    second: Sequence[str] | None,
    *,
    cwd: Path,
    repeat: int,
    fresh: Path | None = None,
) -> tuple[ProcessRun, ProcessRun | None]:
    """Min of ``repeat`` runs of each command, run interleaved; ``second`` None runs ``first`` only.
    ``fresh``: a file deleted before each run of ``first`` (see :func:`run_process`)."""
    best: list[ProcessRun | None] = [None, None]
    for _ in range(repeat):
        for k, argv in enumerate((first, second)):
            if argv is None:
                continue
            run = run_process(argv, cwd=cwd, fresh=fresh if k == 0 else None)
            old = best[k]
            best[k] = (
                run
                if old is None
                else ProcessRun(
                    min(old.seconds, run.seconds),
                    min(old.peak_mb, run.peak_mb),
                    run.stdout if run.seconds < old.seconds else old.stdout,
                    min(old.cpu_s, run.cpu_s),
                )
            )
    assert best[0] is not None
    return best[0], best[1]


def installed(module: str) -> bool:
    """Whether a peer library can be imported in this interpreter (`pip install 'tape[bench]'`)."""
    return find_spec(module) is not None


def peer_argv(script: str, *args: str) -> list[str]:
    """The command that runs one of the peer scripts beside this file, in this interpreter."""
    return [sys.executable, str(PEER_SCRIPTS / script), *args]


def ratio(slower: float, faster: float) -> float:
    """``slower / faster`` rounded for a table (how many times faster ``faster`` is)."""
    return round(slower / faster, 2) if faster > 0 else 0.0
