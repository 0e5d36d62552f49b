"""The strategy registry: strategies plug in by name with typed, validated parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec

from tape.events.errors import ConfigError
from tape.events.strategies.base import BUY, HOLD, SELL, LiveSignals, SignalSeries, Strategy

REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Add a strategy class under its ``name``."""
    REGISTRY[cls.name] = cls
    return cls


class ParamSpec(NamedTuple):
    """One parameter as `tape strategies` shows it."""

    name: str
    type: str
    default: Any
    description: str
    minimum: float | None
    maximum: float | None


def param_specs(cls: type[Strategy]) -> list[ParamSpec]:
    """Names, types, defaults, descriptions and bounds of a strategy's parameters."""
    info = msgspec.inspect.type_info(cls.Params)
    specs = []
    for field in info.fields:  # type: ignore[attr-defined]
        kind, description = field.type, ""
        if isinstance(kind, msgspec.inspect.Metadata):  # Annotated[..., Meta(description=...)]
            description = (kind.extra_json_schema or {}).get("description", "")
            kind = kind.type
        specs.append(
            ParamSpec(
                name=field.name,
                type=type(kind).__name__.removesuffix("Type").lower(),
                default=field.default,
                description=description,
                minimum=getattr(kind, "ge", None),
                maximum=getattr(kind, "le", None),
            )
        )
    return specs


def strategy_class(name: str) -> type[Strategy]:
    """The registered class for ``name``; a clear error listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown strategy {name!r}; known strategies: {', '.join(sorted(REGISTRY))}"
        ) from None


def make_strategy(name: str, params: Mapping[str, Any] | None = None) -> Strategy:
    """Instantiate a strategy with validated parameters (strings like "5" are converted)."""
    cls = strategy_class(name)
    raw = dict(params or {})
    known = set(cls.Params.__struct_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"unknown parameter {unknown[0]!r} for strategy {name} (parameters: {', '.join(sorted(known))})"
        )
    try:
        parsed = msgspec.convert(raw, cls.Params, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"bad parameters for strategy {name}: {_plain(str(exc))}") from None
    return cls(parsed)


def parse_param_args(pairs: list[str]) -> dict[str, str]:
    """``["short=5", "long=20"]`` -> ``{"short": "5", "long": "20"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--param expects NAME=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _plain(message: str) -> str:
    # msgspec says "Expected `int` >= 1 - at `$.short`"; users think in parameter names.
    return message.replace("`$.", "`").replace(" - at ", " for ")


# Registration after the registry exists.
from tape.events.strategies.atr_breakout import AtrBreakout  # noqa: E402
from tape.events.strategies.ensemble import Ensemble  # noqa: E402
from tape.events.strategies.macd import MacdStrategy  # noqa: E402
from tape.events.strategies.mean_reversion import MeanReversion  # noqa: E402
from tape.events.strategies.rsi import RsiStrategy  # noqa: E402
from tape.events.strategies.sma_cross import SmaCross  # noqa: E402

for _cls in (SmaCross, RsiStrategy, MacdStrategy, MeanReversion, AtrBreakout, Ensemble):
    register(_cls)

__all__ = [
    "BUY",
    "HOLD",
    "REGISTRY",
    "SELL",
    "LiveSignals",
    "ParamSpec",
    "SignalSeries",
    "Strategy",
    "make_strategy",
    "param_specs",
    "parse_param_args",
    "register",
    "strategy_class",
]
