"""The options every strategy run takes, defined once: costs, risk, sizing, filters and bar size.

``RUN_OPTIONS`` is the one table of them. The commands that run a strategy (backtest, optimize,
walkforward, validate, trade, spawn) get their ``--options`` from it (``tape.cli.options.run_options``)
and the Python API its keywords (:func:`run_keywords`), with the same names and defaults. A default is
the config field's own (``RiskConfig``, ``CostModel``), so it lives in one place too; a field that
defaults to UNSET is an option defaulting to None, left out of the config when not given so the
config, and the run id, of a run that does not use it stays what it was. Adding a knob: a field on
the config, a row here.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar

import msgspec
from msgspec import UNSET

from tape.events.costs import CostModel
from tape.events.errors import ConfigError
from tape.events.risk import RiskConfig

F = TypeVar("F", bound=Callable[..., Any])

COSTS, RISK, SIZING, FILTERS, BARS = "Costs", "Risk", "Sizing", "Entry filters", "Bars"
PORTFOLIO = "Portfolio strategies"
# Portfolio options set the strategy's own parameters (RebalanceParams): unset, the strategy's default.
_PORTFOLIO_KINDS = {
    "rebalance": str,
    "drift": float,
    "max_weight": float,
    "cash_buffer": float,
    "min_trade": float,
}
ORDERS = "Order types"
SHORTS = "Long and short"


class RunOption(NamedTuple):
    """One option: its keyword (``--`` + dashes on the command line), the config field it sets
    (``cost.<field>``, ``risk.<field>`` or ``timeframe``), its help panel and text, and whether only
    live crypto sessions use it."""

    name: str
    field: str
    panel: str
    help: str
    live_only: bool = False

    @property
    def flag(self) -> str:
        """The option as typed on the command line."""
        return "--" + self.name.replace("_", "-")

    @property
    def default(self) -> Any:
        """The config field's default; None for a field that is unset unless given."""
        value = self._field_default()
        return None if value is UNSET else value

    @property
    def kind(self) -> type:
        """float, int or str: the type of the value (None aside)."""
        if self.field == "timeframe":
            return str
        if self.field.startswith("portfolio."):
            return _PORTFOLIO_KINDS[self.field.partition(".")[2]]
        value = self._field_default()
        if value is not UNSET:
            return type(value)
        kinds = typing.get_args(self._field().type)
        return str if str in kinds else int if int in kinds else float

    def _field(self) -> Any:
        part, name = self.field.split(".")
        return _struct_fields(CostModel if part == "cost" else RiskConfig)[name]

    def _field_default(self) -> Any:
        if self.field == "timeframe" or self.field.startswith("portfolio."):
            return UNSET  # unset: the stored bar size; a portfolio strategy's own parameter
        return self._field().default

    @property
    def annotation(self) -> Any:
        """The keyword's type hint."""
        return self.kind if self.default is not None else self.kind | None


@functools.cache
def _struct_fields(struct: type) -> dict[str, Any]:
    """A config struct's fields by name (read once: every command's options are built from them)."""
    return {f.name: f for f in msgspec.structs.fields(struct)}


RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption(
        "timeframe",
        "timeframe",
        BARS,
        "Bar size to test on: a stored one, or a coarser one built from it (default: the only one stored).",
    ),
    RunOption("slippage_bps", "cost.slippage_bps", COSTS, "Slippage per fill (bps)."),
    RunOption("commission", "cost.commission", COSTS, "Commission per order ($)."),
    RunOption(
        "fee_bps",
        "cost.fee_bps",
        COSTS,
        "Fee per fill, bps of its notional (default: 0 for stocks; 25, Alpaca's crypto taker fee, "
        "for pairs).",
    ),
    RunOption(
        "maker_fee_bps",
        "cost.maker_fee_bps",
        COSTS,
        "Live crypto: fee of a resting limit's fill (bps; default 15).",
        live_only=True,
    ),
    RunOption(
        "stop_band_bps",
        "cost.stop_band_bps",
        COSTS,
        "Live crypto: the protective stop-limit's limit this far below its stop (bps; default 100).",
        live_only=True,
    ),
    RunOption("stop_loss", "risk.stop_loss_pct", RISK, "Stop below entry (%, 0 = none)."),
    RunOption("take_profit", "risk.take_profit_pct", RISK, "Target above entry (%, 0 = none)."),
    RunOption("risk_per_trade", "risk.risk_per_trade_pct", RISK, "Equity risked per trade (%)."),
    RunOption(
        "max_position_size",
        "risk.max_position_size",
        RISK,
        "Shares per stock position, coins per crypto pair's (0 = no cap).",
    ),
    RunOption("max_positions", "risk.max_positions", RISK, "Open positions at once."),
    RunOption(
        "max_daily_loss", "risk.max_daily_loss_pct", RISK, "Daily loss that locks new entries (%, 0 = off)."
    ),
    RunOption("qty", "risk.fixed_qty", SIZING, "Fixed quantity instead of risk sizing."),
    RunOption(
        "qty_increment",
        "risk.qty_increment",
        SIZING,
        "Crypto pairs: size in steps of this many coins, rounding down (default 0.0001). "
        "Stocks always trade whole shares.",
    ),
    RunOption(
        "sizing", "risk.sizing", SIZING, "percent (stop at --stop-loss %) or atr (stop at --atr-stop x ATR)."
    ),
    RunOption("atr_period", "risk.atr_period", SIZING, "ATR period for --sizing atr."),
    RunOption("atr_stop", "risk.atr_stop_multiple", SIZING, "Stop distance in ATRs for --sizing atr."),
    RunOption(
        "min_avg_volume",
        "risk.min_avg_volume",
        FILTERS,
        "Refuse symbols trading less (20-bar average, 0 = off).",
    ),
    RunOption(
        "max_volume_pct",
        "risk.max_volume_pct",
        FILTERS,
        "Cap an order at this % of average volume (0 = off).",
    ),
    RunOption(
        "regimes",
        "risk.regimes",
        FILTERS,
        "Only enter in these regimes: trending,ranging,volatile ('' = any).",
    ),
    RunOption("trend_adx", "risk.trend_adx", FILTERS, "ADX above which a symbol is trending."),
    RunOption("volatile_atr", "risk.volatile_atr_pct", FILTERS, "ATR above this % of the close is volatile."),
    RunOption(
        "max_correlation",
        "risk.max_correlation",
        FILTERS,
        "Refuse (or shrink) entries this correlated with a holding (0 = off).",
    ),
    RunOption("correlation_window", "risk.correlation_window", FILTERS, "Bars of returns to correlate."),
    RunOption("correlation_action", "risk.correlation_action", FILTERS, "reject or shrink (halve)."),
    RunOption(
        "rebalance",
        "portfolio.rebalance",
        PORTFOLIO,
        "bar, daily, weekly, monthly or quarterly: rebalance on the first trading day of each "
        "(default: the strategy's, monthly for the built-ins).",
    ),
    RunOption(
        "drift", "portfolio.drift", PORTFOLIO, "Also rebalance when a weight drifts this many % points."
    ),
    RunOption("max_weight", "portfolio.max_weight", PORTFOLIO, "Cap per symbol (% of equity; default 100)."),
    RunOption("cash_buffer", "portfolio.cash_buffer", PORTFOLIO, "% of equity kept in cash (default 0)."),
    RunOption("min_trade", "portfolio.min_trade", PORTFOLIO, "No order worth less than this ($; default 0)."),
    RunOption(
        "direction",
        "risk.direction",
        SHORTS,
        "long (default), short (SELL opens a short, BUY covers) or both (stop-and-reverse).",
    ),
    RunOption(
        "shortable",
        "risk.shortable",
        SHORTS,
        "Comma list of easy-to-borrow symbols that may be shorted ('*' = every stock). "
        "Any other symbol's short is refused.",
    ),
    RunOption(
        "borrow_fee",
        "risk.borrow_fee_pct",
        SHORTS,
        "A short's borrow fee, % a year of its market value, charged per day held (value x rate / 360; "
        "default 0.30).",
    ),
    RunOption(
        "margin_initial",
        "risk.margin_initial_pct",
        SHORTS,
        "Reg-T initial margin, % of the positions' market value that equity must cover (default 50).",
    ),
    RunOption(
        "margin_maintenance",
        "risk.margin_maintenance_pct",
        SHORTS,
        "Maintenance margin, % of the positions' market value; under it a margin_call alert (default 30).",
    ),
    RunOption(
        "entry_order",
        "risk.entry_order",
        ORDERS,
        "Entry order: market (default, next open), limit, stop or stop_limit, priced from the signal close.",
    ),
    RunOption(
        "entry_offset",
        "risk.entry_offset_pct",
        ORDERS,
        "Limit this % better than the signal close, stop this % beyond it (default 0.5).",
    ),
    RunOption(
        "stop_limit_band",
        "risk.stop_limit_band_pct",
        ORDERS,
        "A stop-limit's limit, % beyond its stop (default 0.5).",
    ),
    RunOption(
        "tif", "risk.tif", ORDERS, "Entry time in force: day (default; expires at its session's end) or gtc."
    ),
    RunOption(
        "expire_bars", "risk.expire_bars", ORDERS, "gtc: cancel an unfilled entry after this many bars."
    ),
    RunOption(
        "limit_fill",
        "risk.limit_fill",
        ORDERS,
        "through (default: a limit fills when the price trades through it) or touch (reaching it is enough).",
    ),
    RunOption("trail_pct", "risk.trail_pct", ORDERS, "Trailing stop, % off the best close since entry."),
    RunOption(
        "trail_amount", "risk.trail_amount", ORDERS, "Trailing stop, a price amount off the best close."
    ),
    RunOption(
        "trail_atr", "risk.trail_atr", ORDERS, "Trailing stop, k x ATR (--atr-period) off the best close."
    ),
    RunOption(
        "time_exit", "risk.time_exit_bars", ORDERS, "Exit at the close of the Nth bar held (next open fill)."
    ),
)


def chosen_options(*, live: bool) -> tuple[RunOption, ...]:
    """The options a command takes: a backtest's (with ``--timeframe``), or a live-capable session's
    (with the live crypto costs; its ``--timeframe`` is its own, defaulting from ``--interval``)."""
    if live:
        return tuple(o for o in RUN_OPTIONS if o.field != "timeframe")
    return tuple(o for o in RUN_OPTIONS if not o.live_only)


class RunOptions(Mapping[str, Any]):
    """The run options' values by keyword, each given or defaulted, and the configs they build."""

    def __init__(self, given: Mapping[str, Any] | None = None, *, live: bool = False) -> None:
        options = chosen_options(live=live)
        known = {o.name for o in options}
        unknown = sorted(set(given or {}) - known)
        if unknown:
            raise TypeError(f"unexpected run option(s): {', '.join(unknown)}")
        self._values = {o.name: (given or {}).get(o.name, o.default) for o in options}
        self._options = options

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def timeframe(self) -> str | None:
        """``--timeframe`` as given (None: the stored one); a live session's is its own option."""
        return self._values.get("timeframe")

    def cost(self) -> CostModel:
        """The CostModel of the cost options."""
        return CostModel(**self._fields("cost"))

    def risk(self) -> RiskConfig:
        """The RiskConfig of the risk, sizing and filter options."""
        return RiskConfig(**self._fields("risk"))

    def portfolio_params(self) -> list[str]:
        """The portfolio options given, as ``--param NAME=VALUE`` of a portfolio strategy."""
        return [f"{name}={value}" for name, value in self._fields("portfolio").items()]

    def _fields(self, part: str) -> dict[str, Any]:
        out = {}
        for option in self._options:
            owner, _, field = option.field.partition(".")
            value = self._values[option.name]
            if owner == part and value is not None:
                out[field] = _coerce(option, value)
        return out


def _coerce(option: RunOption, value: Any) -> Any:
    # The config is hashed into the run id: 2 and 2.0 must record alike, as the command line's float.
    if option.kind is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{option.flag} must be a number, got {value!r}")
        return float(value)
    if option.kind is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{option.flag} must be a whole number, got {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise ConfigError(f"{option.flag} must be text, got {value!r}")
    return value


def is_finite(value: Any) -> bool:
    """False for inf and nan (no amount, price or percentage is infinite); True for anything else."""
    return not (isinstance(value, float) and not math.isfinite(value))


def with_options(
    fn: F, options: tuple[RunOption, ...], parameter: Callable[[RunOption], inspect.Parameter], *, live: bool
) -> F:
    """``fn`` with its ``options`` parameter replaced by one parameter per option (made by
    ``parameter``), in its signature and its calls: the wrapper gathers them into a RunOptions."""
    signature = inspect.signature(fn, eval_str=True)
    params = []
    for p in signature.parameters.values():
        if p.name == "options":
            params += [parameter(o).replace(kind=p.kind) for o in options]
        else:
            params.append(p)
    names = {o.name for o in options}

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
        return fn(*args, options=RunOptions(given, live=live), **kwargs)

    call.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in params} | {"return": signature.return_annotation}
    return call  # type: ignore[return-value]


def run_keywords(fn: F) -> F:
    """An API function taking the run options as keywords: its ``options: RunOptions`` parameter
    becomes one keyword-only parameter per option (same names and defaults as the command's)."""
    return with_options(
        fn,
        chosen_options(live=False),
        lambda o: inspect.Parameter(
            o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default, annotation=o.annotation
        ),
        live=False,
    )
