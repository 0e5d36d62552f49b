"""Injected HTTP failures and latency, matched on the request path's prefix."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class _Stall:
    remaining: int
    seconds: float
    path_prefix: str
    method: str | None
    after: bool


@dataclass
class _Failure:
    remaining: int
    status: int
    path_prefix: str
    method: str | None = None
    skip: int = 0  # matching requests still to let through before failing


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._delays: dict[str, float] = {}
        self._stalls: list[_Stall] = []
        self._armed: list[tuple[str, str, _Failure]] = []  # (method, path prefix) that starts a failure

    def fail_next(
        self, n: int, status: int, path_prefix: str = "", method: str | None = None, skip: int = 0
    ) -> None:
        """The next `n` requests whose path starts with `path_prefix` (and whose method is `method`)
        answer `status`, after letting the first `skip` of them through."""
        if n > 0:
            with self._lock:
                self._failures.append(_Failure(n, status, path_prefix, method, skip))

    def fail_after_next(
        self,
        trigger_method: str,
        trigger_prefix: str,
        n: int,
        status: int,
        path_prefix: str = "",
        method: str | None = None,
    ) -> None:
        """Once the next `trigger_method` request under `trigger_prefix` has arrived (it is answered
        normally), the next `n` requests under `path_prefix` (and `method`) answer `status`."""
        if n > 0:
            with self._lock:
                self._armed.append((trigger_method, trigger_prefix, _Failure(n, status, path_prefix, method)))

    def slow(self, seconds: float, path_prefix: str = "") -> None:
        """Delay every request under `path_prefix` by `seconds` (0 removes the delay)."""
        with self._lock:
            if seconds > 0:
                self._delays[path_prefix] = seconds
            else:
                self._delays.pop(path_prefix, None)

    def stall_next(
        self, n: int, seconds: float, path_prefix: str = "", method: str | None = None, after: bool = False
    ) -> None:
        """Hold the next `n` requests under `path_prefix` (and `method`) for `seconds`: before they
        are handled, or `after` (the work is done and only the answer is late, as when a response
        is lost in transit)."""
        if n > 0:
            with self._lock:
                self._stalls.append(_Stall(n, seconds, path_prefix, method, after))

    def take_stall(self, method: str, path: str) -> tuple[float, bool]:
        """Consume one stall for this request: (seconds, after handling?), or (0, False)."""
        with self._lock:
            for stall in self._stalls:
                if path.startswith(stall.path_prefix) and stall.method in (None, method):
                    stall.remaining -= 1
                    if stall.remaining <= 0:
                        self._stalls.remove(stall)
                    return stall.seconds, stall.after
            return 0.0, False

    @property
    def stalls_pending(self) -> int:
        """Stalled requests still to come."""
        with self._lock:
            return sum(s.remaining for s in self._stalls)

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
            self._delays.clear()
            self._stalls.clear()
            self._armed.clear()

    def delay_for(self, path: str) -> float:
        with self._lock:
            return max((s for p, s in self._delays.items() if path.startswith(p)), default=0.0)

    def take_failure(self, path: str, method: str = "GET") -> int | None:
        """Consume one injected failure for `path` and return its status, or None."""
        with self._lock:
            for failure in self._failures:
                if path.startswith(failure.path_prefix) and failure.method in (None, method):
                    if failure.skip > 0:
                        failure.skip -= 1
                        return None
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    return failure.status
            for armed in self._armed:
                if method == armed[0] and path.startswith(armed[1]):
                    self._armed.remove(armed)
                    self._failures.append(armed[2])
                    break
            return None
