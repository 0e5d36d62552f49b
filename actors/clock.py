"""Where the live engine gets the time: the wall clock, or a simulated one that jumps to each cycle.

Nothing in ``events/`` reads a clock; the scheduler and the adapters do, through this interface, so a
schedule can be run over a past week in seconds (rehearsals, tests) exactly as it runs in real time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from tape.events.errors import ConfigError


class Clock(Protocol):
    """The time source of a live session. ``poll_s``: how often a waiter should look at it again
    (a clock read over the network is asked less often)."""

    poll_s: float

    def now_ns(self) -> int: ...

    def sleep_until(self, ns: int) -> bool:
        """Wait until ``ns``; False when woken early by :meth:`stop`."""
        ...

    def stop(self) -> None: ...


class WallClock:
    """Real time; :meth:`stop` wakes a sleeping scheduler at once (Ctrl-C, `tape down`)."""

    poll_s = 1.0

    def __init__(self) -> None:
        self._stopped = threading.Event()

    def now_ns(self) -> int:
        return time.time_ns()

    def sleep_until(self, ns: int) -> bool:
        while not self._stopped.is_set():
            left = (ns - time.time_ns()) / 1e9
            if left <= 0:
                return True
            self._stopped.wait(min(left, self.poll_s))
        return False

    def stop(self) -> None:
        self._stopped.set()


class SimulatedClock:
    """Time that moves only when the scheduler sleeps: it jumps straight to the wake-up time.

    ``on_advance(ns)`` runs after each jump, which is how a rehearsal moves its market along.
    """

    poll_s = 1.0

    def __init__(self, start_ns: int, on_advance: Callable[[int], None] | None = None) -> None:
        self._now = start_ns
        self._on_advance = on_advance
        self._stopped = False

    def now_ns(self) -> int:
        return self._now

    def sleep_until(self, ns: int) -> bool:
        if self._stopped:
            return False
        self._now = max(self._now, ns)
        if self._on_advance is not None:
            self._on_advance(self._now)
        return True

    def stop(self) -> None:
        self._stopped = True


class BrokerClock:
    """The broker's time (Alpaca's ``/v2/clock``) instead of this machine's.

    For rehearsals against a venue whose clock someone else moves (a paper venue replaying a past day,
    the test emulator): the engine runs a cycle when the *venue* says it is due, so it stays in step
    with the venue's market however fast or slow that clock goes. Reads are shared and cached for
    ``poll_s`` seconds, so several sessions waiting on it cost one request per ``poll_s``.
    """

    def __init__(self, read_ns: Callable[[], int], poll_s: float = 1.0) -> None:
        self.poll_s = poll_s
        self._read_ns = read_ns
        self._lock = threading.Lock()
        self._cached = (0.0, 0)  # (monotonic time of the read, the broker's time then)
        self._stopped = threading.Event()

    def now_ns(self) -> int:
        with self._lock:
            read_at, value = self._cached
            if not value or time.monotonic() - read_at >= self.poll_s:
                value = self._read_ns()
                self._cached = (time.monotonic(), value)
            return value

    def sleep_until(self, ns: int) -> bool:
        while not self._stopped.is_set():
            if self.now_ns() >= ns:
                return True
            self._stopped.wait(self.poll_s)
        return False

    def stop(self) -> None:
        self._stopped.set()


def parse_clock(text: str) -> tuple[str, float]:
    """``wall`` or ``broker[:POLL_SECONDS]`` -> (kind, poll seconds)."""
    kind, _, poll = text.strip().lower().partition(":")
    if kind == "wall" and not poll:
        return "wall", 1.0
    if kind == "broker":
        try:
            seconds = float(poll) if poll else 1.0
        except ValueError:
            seconds = -1.0
        if seconds > 0:
            return "broker", seconds
    raise ConfigError(f"--clock expects wall or broker[:POLL_SECONDS], got {text!r}")
