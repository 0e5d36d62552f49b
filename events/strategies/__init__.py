"""The strategy registry: strategies plug in by name with typed, validated parameters.

Built-ins are registered here by name. A user's strategy (a file, a module, an entry point) is loaded by
``tape.store.strategy_loader`` (loading is I/O) and installed here under its canonical spec, which ends
in ``@`` and a hash of its source, so a config naming it names that exact code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec

from tape.events.errors import ConfigError
from tape.events.strategies.base import BUY, FLAT, HOLD, SELL, LiveSignals, SignalSeries, Strategy

REGISTRY: dict[str, type[Strategy]] = {}
LOADED: dict[str, tuple[type[Strategy], dict[str, str]]] = {}  # canonical spec -> (class, origin)


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


def install(spec: str, cls: type[Strategy], origin: dict[str, str]) -> None:
    """Make a loaded strategy class known under its canonical spec (origin: kind, location, class,
    sha256 of its source)."""
    LOADED[spec] = (cls, origin)


def origin_of(name: str) -> dict[str, str]:
    """Where a strategy came from; empty for a built-in (its source is part of the code version)."""
    loaded = LOADED.get(name)
    return dict(loaded[1]) if loaded else {}


def strategy_class(name: str) -> type[Strategy]:
    """The registered or loaded class for ``name``; a clear error listing the known names otherwise."""
    cls = REGISTRY.get(name)
    if cls is not None:
        return cls
    loaded = LOADED.get(name)
    if loaded is not None:
        return loaded[0]
    raise ConfigError(
        f"unknown strategy {name!r}; known strategies: {', '.join(sorted(REGISTRY))} "
        "(or a file: path/to/file.py[:Class], a module: package.module:Class)"
    )


def make_strategy(name: str, params: Mapping[str, Any] | None = None) -> Strategy:
    """Instantiate a strategy with validated parameters (strings like "5" are converted)."""
    cls = strategy_class(name)
    raw = dict(params or {})
    known = set(cls.Params.__struct_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"unknown parameter {unknown[0]!r} for strategy {cls.name} "
            f"(parameters: {', '.join(sorted(known)) or 'none'})"
        )
    try:
        parsed = msgspec.convert(raw, cls.Params, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"bad parameters for strategy {cls.name}: {_plain(str(exc))}") from None
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
from tape.events.strategies.inverse_vol import InverseVol  # noqa: E402
from tape.events.strategies.macd import MacdStrategy  # noqa: E402
from tape.events.strategies.mean_reversion import MeanReversion  # noqa: E402
from tape.events.strategies.momentum import Momentum  # noqa: E402
from tape.events.strategies.portfolio_base import PortfolioStrategy, Weights  # noqa: E402
from tape.events.strategies.rsi import RsiStrategy  # noqa: E402
from tape.events.strategies.sma_cross import SmaCross  # noqa: E402

for _cls in (SmaCross, RsiStrategy, MacdStrategy, MeanReversion, AtrBreakout, Ensemble):
    register(_cls)
for _portfolio in (Momentum, InverseVol):  # portfolio strategies: weights over a universe
    register(_portfolio)

__all__ = [
    "BUY",
    "FLAT",
    "HOLD",
    "LOADED",
    "REGISTRY",
    "SELL",
    "LiveSignals",
    "ParamSpec",
    "PortfolioStrategy",
    "SignalSeries",
    "Strategy",
    "Weights",
    "install",
    "make_strategy",
    "origin_of",
    "param_specs",
    "parse_param_args",
    "register",
    "strategy_class",
]
