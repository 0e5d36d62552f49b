"""The API boundary: a user's mistake surfaces as one exception, named in the API's words.

Inside, errors name the CLI's options (``--start``); a caller of ``tape.backtest(start=...)`` reads
``start`` instead, and the traceback stops at the public function (``raise ... from None``), never
winding through the engine's internals for a mistake in the arguments.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar

from tape.events.errors import TapeError

F = TypeVar("F", bound=Callable[..., Any])

_OPTION = re.compile(r"--([a-z][a-z0-9-]*)")
# Options whose keyword in the API has another name.
_RENAMED = {"param": "params", "trade": "n", "universe": "universe", "random": "random"}


def public(fn: F) -> F:
    """Wrap an API function so a TapeError raised inside re-raises from here, its ``--option`` names
    read as the function's keyword names. ``fn.__wrapped__`` is the function itself: the CLI calls it
    directly, keeping its own messages."""
    keywords = set(inspect.signature(fn).parameters)

    def in_api_words(message: str) -> str:
        def rename(match: re.Match[str]) -> str:
            name = _RENAMED.get(match.group(1), match.group(1).replace("-", "_"))
            return name if name in keywords else match.group(0)

        return _OPTION.sub(rename, message)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TapeError as exc:
            clean = copy.copy(exc)
            clean.args = (in_api_words(str(exc)),)
            raise clean from None

    return call  # type: ignore[return-value]
