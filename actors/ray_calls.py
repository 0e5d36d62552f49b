"""Calls into Ray the engine's actors share: get with a timeout, the user-facing error inside a task
error, and retiring a named actor before its successor takes the name."""

from __future__ import annotations

import time
from typing import Any

from tape.events.errors import TapeError


def ray_get(ref: Any, timeout: float | None = None) -> Any:
    """``ray.get`` with Ray imported only when a call is made."""
    import ray

    return ray.get(ref, timeout=timeout)


def error_cause(exc: BaseException) -> BaseException:
    """The user-facing error inside a Ray task error (a TapeError raised in an actor), else ``exc``."""
    from ray.exceptions import RayTaskError

    if isinstance(exc, RayTaskError) and isinstance(exc.cause, TapeError):
        return exc.cause
    return exc


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong in an actor: a TapeError's message, else the type and first line."""
    cause = error_cause(exc)
    if isinstance(cause, TapeError):
        return str(cause)
    return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"[:300]


def retire_actor(name: str, timeout_s: float = 30.0) -> None:
    """Kill the actor registered under ``name`` (if any) and wait until the name is free."""
    import ray

    try:
        old = ray.get_actor(name)
    except ValueError:
        return
    ray.kill(old, no_restart=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(name)
        except ValueError:
            return
        time.sleep(0.05)  # polling the name registry: Ray offers no wait for an actor's death
    raise TapeError(f"the old actor {name} did not go away within {timeout_s:g} s")
