"""The live session's clock loop: one cycle at each scheduled time (every interval inside the
market's sessions; around the clock for crypto pairs) until stopped."""

from __future__ import annotations

from collections.abc import Callable

from tape.actors.clock import Clock
from tape.actors.live_session.contracts import CycleReport
from tape.actors.live_session.session import LiveSession
from tape.actors.schedule import is_crypto, next_run


def run_schedule(
    session: LiveSession,
    clock: Clock,
    interval_s: int,
    *,
    until_ns: int | None = None,
    max_cycles: int | None = None,
    on_cycle: Callable[[CycleReport, int], None] | None = None,
) -> int:
    """Run cycles at the scheduled times until the clock is stopped, ``until_ns`` or ``max_cycles``.
    ``on_cycle(report, next_ns)`` is told after each. Returns the number of cycles run."""
    crypto = all(is_crypto(s) for s in session.config.symbols)
    ran = 0
    while max_cycles is None or ran < max_cycles:
        due = next_run(clock.now_ns(), interval_s, crypto=crypto)
        if until_ns is not None and due > until_ns:
            break
        if not clock.sleep_until(due):
            break
        report = session.run_cycle(due)
        ran += 1
        if on_cycle is not None:
            on_cycle(report, next_run(due, interval_s, crypto=crypto))
    return ran
