"""Plain views of events for output: nested dicts with field names (bodies are stored as arrays)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from tape.events.schema import Event, kind_of


def as_dict(value: Any) -> Any:
    """Recursively turn structs into dicts keyed by field name; other values pass through."""
    if isinstance(value, msgspec.Struct):
        out: dict[str, Any] = {}
        if isinstance(value, Event):
            out["kind"] = kind_of(value)
        for name in value.__struct_fields__:
            out[name] = as_dict(getattr(value, name))
        return out
    if isinstance(value, list | tuple):
        return [as_dict(v) for v in value]
    if isinstance(value, dict):
        return {k: as_dict(v) for k, v in value.items()}
    return value


_NY = ZoneInfo("America/New_York")


def time_text(ts: int) -> str:
    """A timestamp (ns UTC) as New York local time with its offset, to the minute."""
    moment = dt.datetime.fromtimestamp(ts // 1_000_000_000, tz=dt.UTC).astimezone(_NY)
    return moment.isoformat(timespec="minutes")


def summarize(event: Event) -> str:
    """One short human line for an event (used by `tape log show` and `tape explain`)."""
    fields = as_dict(event)
    fields.pop("kind", None)
    fields.pop("ts", None)
    parts = []
    for name, value in fields.items():
        if value in ("", [], {}, None):
            continue
        if name.endswith("_ts") and isinstance(value, int) and value > 0:
            value = time_text(value)
        elif isinstance(value, float):
            value = f"{value:.6g}"
        elif isinstance(value, dict | list):
            value = msgspec.json.encode(value).decode()
            if len(value) > 80:
                value = value[:77] + "..."
        parts.append(f"{name}={value}")
    return " ".join(parts)
