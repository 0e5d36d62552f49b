"""Injected HTTP failures and latency, matched on the request path's prefix."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class _Failure:
    remaining: int
    status: int
    path_prefix: str


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._delays: dict[str, float] = {}

    def fail_next(self, n: int, status: int, path_prefix: str = "") -> None:
        """The next `n` requests whose path starts with `path_prefix` answer `status`."""
        if n > 0:
            with self._lock:
                self._failures.append(_Failure(n, status, path_prefix))

    def slow(self, seconds: float, path_prefix: str = "") -> None:
        """Delay every request under `path_prefix` by `seconds` (0 removes the delay)."""
        with self._lock:
            if seconds > 0:
                self._delays[path_prefix] = seconds
            else:
                self._delays.pop(path_prefix, None)

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
            self._delays.clear()

    def delay_for(self, path: str) -> float:
        with self._lock:
            return max((s for p, s in self._delays.items() if path.startswith(p)), default=0.0)

    def take_failure(self, path: str) -> int | None:
        """Consume one injected failure for `path` and return its status, or None."""
        with self._lock:
            for failure in self._failures:
                if path.startswith(failure.path_prefix):
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    return failure.status
            return None
