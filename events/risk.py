"""Risk rules: RiskConfig with the plan's defaults, position sizing, entry checks, stop/target exits.

Percentages are in percent (2.0 means 2 %), as users type them. All functions are pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_FLOOR, Decimal
from typing import Any, NamedTuple

import msgspec
from msgspec import UNSET, UnsetType

from tape.events.costs import is_pair
from tape.events.errors import ConfigError

# Crypto pairs are sized in steps of this many coins unless ``qty_increment`` says otherwise (Alpaca's
# BTC/USD min_trade_increment); stocks are always sized in whole shares.
PAIR_QTY_INCREMENT = 1e-4

# Shorts, as Alpaca documents them: a daily borrow fee of (qty x price x annual rate) / 360 on the
# position's market value (the rate below is a stated default for easy-to-borrow stocks, which the user
# sets with --borrow-fee); Reg-T initial margin of 50 % and, for shorts, a maintenance margin of 30 %
# (the asset's ``maintenance_margin_requirement``); no short with account equity under $2,000.
BORROW_FEE_PCT = 0.30
BORROW_DAYS_PER_YEAR = 360
INITIAL_MARGIN_PCT = 50.0
MAINTENANCE_MARGIN_PCT = 30.0
MIN_SHORT_EQUITY = 2_000.0


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-trade and portfolio limits. 0 disables a stop, a target, a cap or the daily-loss limit.

    ``max_position_size`` counts shares of a stock and coins of a crypto pair (100 BTC, 100 DOGE).
    ``qty_increment`` defaults to UNSET, which msgspec leaves out of the encoded config: a config that
    does not set it (every stock run) encodes, and hashes to a run id, without it.
    """

    risk_per_trade_pct: float = 2.0  # equity risked per trade (entry to stop)
    stop_loss_pct: float = 5.0  # below entry
    take_profit_pct: float = 10.0  # above entry
    max_position_size: float = 100.0  # shares per position
    max_positions: int = 3  # open at once, across symbols
    max_daily_loss_pct: float = 5.0  # of the equity at the previous session's close
    fixed_qty: float = 0.0  # > 0 replaces risk sizing by this quantity (still capped)
    sizing: str = "percent"  # "atr": stop distance = atr_stop_multiple x ATR, same $ risk at any volatility
    atr_period: int = 14
    atr_stop_multiple: float = 2.0
    min_avg_volume: float = 0.0  # > 0: refuse symbols whose average volume (volume_window bars) is lower
    max_volume_pct: float = 0.0  # > 0: no order above this share (%) of the average volume
    volume_window: int = 20
    regimes: str = (
        ""  # comma list of regimes new entries are allowed in (trending,ranging,volatile); "" = any
    )
    trend_adx: float = 25.0  # ADX above this is a trend
    volatile_atr_pct: float = 4.0  # ATR above this % of the close is volatile
    max_correlation: float = 0.0  # > 0: a new position this correlated with an open one is refused/shrunk
    correlation_window: int = 60  # bars of returns the correlation is measured over
    correlation_action: str = "reject"  # or "shrink": halve the position instead
    qty_increment: float | UnsetType = UNSET  # pairs are sized in these steps; unset: 0.0001 coin
    # Shorts (all UNSET unless given, so a long-only config and its run id stay what they were).
    direction: str | UnsetType = UNSET  # long (unset), short or both (stop-and-reverse)
    borrow_fee_pct: float | UnsetType = UNSET  # annual % on a short's market value; unset: 0.30
    shortable: str | UnsetType = UNSET  # comma list of easy-to-borrow symbols ("*" = every stock)
    margin_initial_pct: float | UnsetType = UNSET  # Reg-T initial margin; unset: 50
    margin_maintenance_pct: float | UnsetType = UNSET  # maintenance margin of a short; unset: 30
    # Order types (events/orders.py), UNSET unless given as well.
    entry_order: str | UnsetType = UNSET  # market (unset), limit, stop or stop_limit
    entry_offset_pct: float | UnsetType = UNSET  # limit/stop distance from the signal close; unset: 0.5
    stop_limit_band_pct: float | UnsetType = UNSET  # a stop-limit's limit beyond its stop; unset: 0.5
    tif: str | UnsetType = UNSET  # day (unset) or gtc
    expire_bars: int | UnsetType = UNSET  # gtc: cancel an entry unfilled after this many bars
    limit_fill: str | UnsetType = UNSET  # through (unset): the price must trade through; or touch
    trail_pct: float | UnsetType = UNSET  # trailing stop, % off the best close since entry
    trail_amount: float | UnsetType = UNSET  # trailing stop, a price amount off the best close
    trail_atr: float | UnsetType = UNSET  # trailing stop, k x ATR(atr_period) off the best close
    time_exit_bars: int | UnsetType = UNSET  # exit at the close of the Nth bar held

    def option(self, name: str, default: object) -> Any:
        """A field's value, or ``default`` when it is unset."""
        value = getattr(self, name)
        return default if value is UNSET else value

    @property
    def trailing(self) -> bool:
        """Whether a trailing stop replaces the fixed one."""
        return any(self.option(f, 0.0) > 0 for f in ("trail_pct", "trail_amount", "trail_atr"))

    @property
    def bar_by_bar(self) -> bool:
        """Whether a held position needs every one of its bars (a trailing stop, a time exit)."""
        return self.trailing or self.option("time_exit_bars", 0) > 0

    @property
    def side_mode(self) -> str:
        """long (unset), short or both."""
        return "long" if self.direction is UNSET else self.direction

    @property
    def borrow_rate(self) -> float:
        """The annual borrow fee of a short as a fraction (default :data:`BORROW_FEE_PCT`)."""
        return (BORROW_FEE_PCT if self.borrow_fee_pct is UNSET else self.borrow_fee_pct) / 100.0

    @property
    def initial_margin(self) -> float:
        """Reg-T initial margin as a fraction (default :data:`INITIAL_MARGIN_PCT`)."""
        pct = INITIAL_MARGIN_PCT if self.margin_initial_pct is UNSET else self.margin_initial_pct
        return pct / 100.0

    @property
    def maintenance_margin(self) -> float:
        """Maintenance margin of a short as a fraction (default :data:`MAINTENANCE_MARGIN_PCT`)."""
        pct = MAINTENANCE_MARGIN_PCT if self.margin_maintenance_pct is UNSET else self.margin_maintenance_pct
        return pct / 100.0

    @property
    def awaits_shortable(self) -> bool:
        """Whether the run may go short and names no ``--shortable`` list itself: the list is then
        looked up before the run opens (the data store's flags, or Alpaca's live) and recorded."""
        return self.side_mode != "long" and self.shortable is UNSET

    def declared_shortable(self, symbol: str) -> bool:
        """Whether ``symbol`` was declared easy to borrow with ``--shortable``."""
        if self.shortable is UNSET:
            return False
        names = {name.strip().upper() for name in self.shortable.split(",")}
        return "*" in names or symbol.upper() in names

    def increment(self, symbol: str) -> float:
        """The step quantities of ``symbol`` are rounded down to: 1 share for a stock, ``qty_increment``
        (default :data:`PAIR_QTY_INCREMENT`) for a crypto pair."""
        if not is_pair(symbol):
            return 1.0
        return PAIR_QTY_INCREMENT if self.qty_increment is UNSET else self.qty_increment

    @property
    def allowed_regimes(self) -> tuple[str, ...]:
        """The regimes new entries are allowed in (empty: any)."""
        return tuple(r.strip() for r in self.regimes.split(",") if r.strip())

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:  # nan compares false and inf passes ">= 0": refuse both first
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"risk setting {name} must be a finite number, got {value}")
        checks = [
            (
                0 < self.risk_per_trade_pct <= 100,
                f"risk per trade must be in (0, 100] %, got {self.risk_per_trade_pct}",
            ),
            (0 <= self.stop_loss_pct < 100, f"stop loss must be in [0, 100) %, got {self.stop_loss_pct}"),
            (self.take_profit_pct >= 0, f"take profit cannot be negative, got {self.take_profit_pct}"),
            (
                self.max_position_size >= 0,
                f"max position size cannot be negative, got {self.max_position_size}",
            ),
            (self.max_positions >= 1, f"max positions must be at least 1, got {self.max_positions}"),
            (
                0 <= self.max_daily_loss_pct <= 100,
                f"max daily loss must be in [0, 100] %, got {self.max_daily_loss_pct}",
            ),
            (self.fixed_qty >= 0, f"--qty cannot be negative, got {self.fixed_qty}"),
            (self.sizing in ("percent", "atr"), f"--sizing must be percent or atr, got {self.sizing!r}"),
            (self.atr_period >= 1, f"--atr-period must be at least 1, got {self.atr_period}"),
            (self.atr_stop_multiple > 0, f"--atr-stop must be positive, got {self.atr_stop_multiple:g}"),
            (self.min_avg_volume >= 0, f"--min-avg-volume cannot be negative, got {self.min_avg_volume:g}"),
            (
                0 <= self.max_volume_pct <= 100,
                f"--max-volume-pct must be in [0, 100], got {self.max_volume_pct:g}",
            ),
            (self.volume_window >= 1, f"volume window must be at least 1, got {self.volume_window}"),
            (
                0 <= self.max_correlation <= 1,
                f"--max-correlation must be in [0, 1], got {self.max_correlation:g}",
            ),
            (
                self.correlation_window >= 4,
                f"correlation window must be at least 4, got {self.correlation_window}",
            ),
            (
                self.correlation_action in ("reject", "shrink"),
                f"--correlation-action must be reject or shrink, got {self.correlation_action!r}",
            ),
            (
                all(r in ("trending", "ranging", "volatile") for r in self.allowed_regimes),
                f"--regimes takes trending, ranging, volatile (comma separated), got {self.regimes!r}",
            ),
            (
                self.qty_increment is UNSET or 0 < self.qty_increment <= 1,
                f"--qty-increment must be in (0, 1], got {self.qty_increment}",
            ),
            *self._short_checks(),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def _short_checks(self) -> list[tuple[bool, str]]:
        return [
            (
                self.option("entry_order", "market") in ("market", "limit", "stop", "stop_limit"),
                f"--entry-order must be market, limit, stop or stop_limit, got {self.entry_order!r}",
            ),
            (self.option("tif", "day") in ("day", "gtc"), f"--tif must be day or gtc, got {self.tif!r}"),
            (
                self.option("limit_fill", "through") in ("through", "touch"),
                f"--limit-fill must be through or touch, got {self.limit_fill!r}",
            ),
            (
                self.option("expire_bars", 0) >= 0 and self.option("time_exit_bars", 0) >= 0,
                "--expire-bars and --time-exit cannot be negative",
            ),
            *(
                (self.option(name, 0.0) >= 0, f"{flag} cannot be negative, got {getattr(self, name)}")
                for name, flag in (
                    ("entry_offset_pct", "--entry-offset"),
                    ("stop_limit_band_pct", "--stop-limit-band"),
                    ("trail_pct", "--trail-pct"),
                    ("trail_amount", "--trail-amount"),
                    ("trail_atr", "--trail-atr"),
                )
            ),
            (self.option("trail_pct", 0.0) < 100, f"--trail-pct must be under 100, got {self.trail_pct}"),
            (
                self.side_mode in ("long", "short", "both"),
                f"--direction must be long, short or both, got {self.direction!r}",
            ),
            (
                self.borrow_fee_pct is UNSET or 0 <= self.borrow_fee_pct <= 100,
                f"--borrow-fee must be in [0, 100] % a year, got {self.borrow_fee_pct}",
            ),
            (
                self.margin_initial_pct is UNSET or 0 < self.margin_initial_pct <= 100,
                f"--margin-initial must be in (0, 100] %, got {self.margin_initial_pct}",
            ),
            (
                self.margin_maintenance_pct is UNSET or 0 < self.margin_maintenance_pct <= 100,
                f"--margin-maintenance must be in (0, 100] %, got {self.margin_maintenance_pct}",
            ),
        ]


class MarketContext(NamedTuple):
    """What the risk gate may need about the market at the signal bar (NaN where not computed)."""

    atr: float = math.nan
    avg_volume: float = math.nan
    regime: str = ""
    correlations: tuple[tuple[str, float], ...] = ()  # (open symbol, correlation) pairs


def needs_context(risk: RiskConfig) -> bool:
    """Whether the drivers must compute ATR / average volume / regimes for this config."""
    return (
        risk.sizing == "atr"
        or risk.min_avg_volume > 0
        or risk.max_volume_pct > 0
        or bool(risk.regimes)
        or risk.max_correlation > 0
        or risk.option("trail_atr", 0.0) > 0
    )


def floor_to(qty: float, increment: float = 1.0) -> float:
    """``qty`` rounded down to a whole number of ``increment`` steps.

    A step of 1 (whole shares) is ``math.floor``, exactly as stock sizing always was, so stock runs
    decide and record the same numbers. A fractional step is counted in decimal, so 0.0013 coins stay
    0.0013 (float division makes 0.0013 / 0.0001 = 12.999999999999998 steps and loses one): the result
    is the float nearest to a decimal with no more places than the step, and prints and serialises as
    that decimal. Nothing (0 or less, NaN) is 0.
    """
    if increment == 1.0 and math.isfinite(qty):
        return float(math.floor(qty))
    if not qty > 0:  # also NaN
        return 0.0
    if math.isinf(qty):
        return qty
    step = Decimal(repr(increment))
    return float((Decimal(repr(qty)) / step).to_integral_value(rounding=ROUND_FLOOR) * step)


class Sizing(msgspec.Struct, frozen=True, gc=False):
    """How a quantity was reached: every number is recorded on the RiskAccepted/Rejected event."""

    qty: float
    checks: dict[str, float]


def size_position(
    equity: float,
    cash: float,
    price: float,
    risk: RiskConfig,
    cost_per_share: float,
    commission: float,
    stop_distance: float | None = None,
    increment: float = 1.0,
) -> Sizing:
    """Shares (or coins) to buy at ``price``: risk ``risk_per_trade_pct`` of equity between entry and
    stop, rounded down to ``increment`` (1: whole shares; a pair's coin step).

    Without a stop the whole position is at risk, so the size is the risk budget divided by the price.
    ``stop_distance`` (ATR sizing) replaces the percentage stop. The result is capped by
    ``max_position_size`` and by the cash available after slippage and commission.
    """
    risk_amount = equity * risk.risk_per_trade_pct / 100.0
    if stop_distance is not None:
        per_share_risk = stop_distance
    else:
        per_share_risk = price * (risk.stop_loss_pct / 100.0 if risk.stop_loss_pct > 0 else 1.0)
    wanted = risk.fixed_qty if risk.fixed_qty > 0 else floor_to(risk_amount / per_share_risk, increment)
    qty = float(wanted)
    if risk.max_position_size > 0:
        qty = min(qty, risk.max_position_size)
    affordable = (
        floor_to(max(cash - commission, 0.0) / cost_per_share, increment) if cost_per_share > 0 else 0
    )
    qty = float(max(min(qty, affordable), 0))
    if increment != 1.0:  # a pair: a fixed quantity or a cap off the coin step is rounded down to it
        qty = floor_to(qty, increment)
    return Sizing(
        qty,
        {
            "equity": equity,
            "cash": cash,
            "price": price,
            "risk_amount": risk_amount,
            "per_share_risk": per_share_risk,
            "wanted_qty": float(wanted),
            "max_position_size": risk.max_position_size,
            "affordable_qty": float(affordable),
        },
    )


def protective_prices(entry_price: float, risk: RiskConfig, *, short: bool = False) -> tuple[float, float]:
    """(stop, target) for a position entered at ``entry_price``; 0.0 where disabled. A long's stop
    sits below its entry and its target above; a short's the other way round."""
    sign = -1.0 if short else 1.0
    stop = entry_price * (1.0 - sign * risk.stop_loss_pct / 100.0) if risk.stop_loss_pct > 0 else 0.0
    target = entry_price * (1.0 + sign * risk.take_profit_pct / 100.0) if risk.take_profit_pct > 0 else 0.0
    return stop, target


def protective_exit(
    stop: float, target: float, open: float, high: float, low: float
) -> tuple[str, float] | None:
    """Whether a bar triggers the stop or the target of a long position, and at what price.

    A gap through either level fills at the open. When the bar touches both, the stop is assumed to
    have come first (the conservative reading of an OHLC bar).
    """
    if stop > 0 and open <= stop:
        return "stop_loss", open
    if target > 0 and open >= target:
        return "take_profit", open
    if stop > 0 and low <= stop:
        return "stop_loss", stop
    if target > 0 and high >= target:
        return "take_profit", target
    return None


def short_protective_exit(
    stop: float, target: float, open: float, high: float, low: float
) -> tuple[str, float] | None:
    """:func:`protective_exit` for a short: the stop is above and triggers on the high, the target
    below and triggers on the low. Gaps fill at the open; the stop is assumed first."""
    if stop > 0 and open >= stop:
        return "stop_loss", open
    if target > 0 and open <= target:
        return "take_profit", open
    if stop > 0 and high >= stop:
        return "stop_loss", stop
    if target > 0 and low <= target:
        return "take_profit", target
    return None


def borrow_fee_cents(qty: float, price: float, annual_rate: float) -> int:
    """One day's borrow fee of a short of ``qty`` marked at ``price``, in whole cents (Alpaca's
    formula: market value x annual rate / 360, charged per day held)."""
    fee = abs(qty) * price * annual_rate / BORROW_DAYS_PER_YEAR
    return int(fee * 100.0 + 0.5)


def equity_of(cash: float, holdings: Mapping[str, float], prices: Mapping[str, float]) -> float:
    """Cash plus holdings marked at ``prices``."""
    return cash + sum(qty * prices[symbol] for symbol, qty in holdings.items())
