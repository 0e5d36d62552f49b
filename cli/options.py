"""Options several commands share, declared once, and the config they build."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated

import typer

from tape.events.backtest import BacktestConfig
from tape.events.costs import CostModel
from tape.events.errors import ConfigError
from tape.events.risk import RiskConfig
from tape.events.strategies import parse_param_args


def finite(value: float | None) -> float | None:
    """Refuse inf and nan for a numeric option: no amount, price or percentage is infinite."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


Symbols = Annotated[list[str], typer.Argument(help="One or more symbols; several share cash and limits.")]
Strategy = Annotated[str, typer.Option("--strategy", "-s", help="Strategy name (see `tape strategies`).")]
Params = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="Strategy parameter NAME=VALUE (repeatable).")
]
Start = Annotated[str | None, typer.Option("--start", help="First day (YYYY-MM-DD).")]
End = Annotated[str | None, typer.Option("--end", help="Last day (YYYY-MM-DD).")]
Cash = Annotated[float, typer.Option("--cash", callback=finite, help="Starting cash ($).")]
SlippageBps = Annotated[
    float, typer.Option("--slippage-bps", callback=finite, help="Slippage per fill (bps).")
]
Commission = Annotated[float, typer.Option("--commission", callback=finite, help="Commission per order ($).")]
FeeBps = Annotated[
    float | None,
    typer.Option(
        "--fee-bps",
        callback=finite,
        help="Fee per fill, bps of its notional (default: 0 for stocks; 25, Alpaca's crypto taker fee, "
        "for pairs).",
    ),
]
MakerFeeBps = Annotated[
    float | None,
    typer.Option(
        "--maker-fee-bps",
        callback=finite,
        help="Live crypto: fee of a resting limit's fill (bps; default 15).",
    ),
]
StopBandBps = Annotated[
    float | None,
    typer.Option(
        "--stop-band-bps",
        callback=finite,
        help="Live crypto: the protective stop-limit's limit this far below its stop (bps; default 100).",
    ),
]
StopLoss = Annotated[
    float, typer.Option("--stop-loss", callback=finite, help="Stop below entry (%, 0 = none).")
]
TakeProfit = Annotated[
    float, typer.Option("--take-profit", callback=finite, help="Target above entry (%, 0 = none).")
]
RiskPerTrade = Annotated[
    float, typer.Option("--risk-per-trade", callback=finite, help="Equity risked per trade (%).")
]
MaxPositionSize = Annotated[
    float,
    typer.Option(
        "--max-position-size",
        callback=finite,
        help="Shares per stock position, coins per crypto pair's (0 = no cap).",
    ),
]
MaxPositions = Annotated[int, typer.Option("--max-positions", help="Open positions at once.")]
MaxDailyLoss = Annotated[
    float,
    typer.Option("--max-daily-loss", callback=finite, help="Daily loss that locks new entries (%, 0 = off)."),
]
Qty = Annotated[float, typer.Option("--qty", callback=finite, help="Fixed quantity instead of risk sizing.")]
QtyIncrement = Annotated[
    float | None,
    typer.Option(
        "--qty-increment",
        callback=finite,
        help="Crypto pairs: size in steps of this many coins, rounding down (default 0.0001). "
        "Stocks always trade whole shares.",
    ),
]
Sizing = Annotated[
    str, typer.Option("--sizing", help="percent (stop at --stop-loss %) or atr (stop at --atr-stop x ATR).")
]
AtrPeriod = Annotated[int, typer.Option("--atr-period", help="ATR period for --sizing atr.")]
AtrStop = Annotated[
    float, typer.Option("--atr-stop", callback=finite, help="Stop distance in ATRs for --sizing atr.")
]
MinAvgVolume = Annotated[
    float,
    typer.Option(
        "--min-avg-volume", callback=finite, help="Refuse symbols trading less (20-bar average, 0 = off)."
    ),
]
MaxVolumePct = Annotated[
    float,
    typer.Option(
        "--max-volume-pct", callback=finite, help="Cap an order at this % of average volume (0 = off)."
    ),
]
Regimes = Annotated[
    str, typer.Option("--regimes", help="Only enter in these regimes: trending,ranging,volatile ('' = any).")
]
TrendAdx = Annotated[
    float, typer.Option("--trend-adx", callback=finite, help="ADX above which a symbol is trending.")
]
VolatileAtr = Annotated[
    float, typer.Option("--volatile-atr", callback=finite, help="ATR above this % of the close is volatile.")
]
MaxCorrelation = Annotated[
    float,
    typer.Option(
        "--max-correlation",
        callback=finite,
        help="Refuse (or shrink) entries this correlated with a holding (0 = off).",
    ),
]
CorrelationWindow = Annotated[int, typer.Option("--correlation-window", help="Bars of returns to correlate.")]
CorrelationAction = Annotated[str, typer.Option("--correlation-action", help="reject or shrink (halve).")]
Address = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster address (auto, ray://host:10001); local Ray if unset."),
]
Dataset = Annotated[
    str,
    typer.Option("--dataset", help="Read a bundled dataset (sample, sp500_20) instead of the data store."),
]
TradeUpdates = Annotated[
    bool,
    typer.Option(
        "--trade-updates/--no-trade-updates",
        help="Live: listen to Alpaca's trade-update stream, so a market order's fill is logged in the "
        "cycle that placed it; polling stays the source of truth, and trades on alone if the stream "
        "is off or down (fills then a cycle later).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def cost_model(
    slippage_bps: float,
    commission: float,
    fee_bps: float | None = None,
    maker_fee_bps: float | None = None,
    stop_band_bps: float | None = None,
) -> CostModel:
    """The CostModel of the cost options. An option not given stays unset (the symbol's default),
    which keeps the config, and so the run id, of a run that does not use it what it was before."""
    given = {
        name: value
        for name, value in (
            ("fee_bps", fee_bps),
            ("maker_fee_bps", maker_fee_bps),
            ("stop_band_bps", stop_band_bps),
        )
        if value is not None
    }
    return CostModel(slippage_bps=slippage_bps, commission=commission, **given)


def risk_config(
    *,
    risk_per_trade: float,
    stop_loss: float,
    take_profit: float,
    max_position_size: float,
    max_positions: int,
    max_daily_loss: float,
    qty: float,
    qty_increment: float | None,
    sizing: str,
    atr_period: int,
    atr_stop: float,
    min_avg_volume: float,
    max_volume_pct: float,
    regimes: str,
    trend_adx: float,
    volatile_atr: float,
    max_correlation: float,
    correlation_window: int,
    correlation_action: str,
) -> RiskConfig:
    """The RiskConfig of the risk options (named as on the command line). ``--qty-increment`` not
    given stays unset, so the config, and so the run id, of a run that does not use it stays what it
    was before the option existed."""
    return RiskConfig(
        risk_per_trade_pct=risk_per_trade,
        stop_loss_pct=stop_loss,
        take_profit_pct=take_profit,
        max_position_size=max_position_size,
        max_positions=max_positions,
        max_daily_loss_pct=max_daily_loss,
        fixed_qty=qty,
        sizing=sizing,
        atr_period=atr_period,
        atr_stop_multiple=atr_stop,
        min_avg_volume=min_avg_volume,
        max_volume_pct=max_volume_pct,
        regimes=regimes,
        trend_adx=trend_adx,
        volatile_atr_pct=volatile_atr,
        max_correlation=max_correlation,
        correlation_window=correlation_window,
        correlation_action=correlation_action,
        **({} if qty_increment is None else {"qty_increment": qty_increment}),
    )


def parse_day(text: str | None, option: str) -> str:
    """A YYYY-MM-DD option, normalised; "" when not given."""
    if not text:
        return ""
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ConfigError(f"{option} expects a date like 2010-01-31, got {text!r}") from None


def build_config(
    symbols: list[str],
    strategy: str,
    param: list[str] | None,
    start: str | None,
    end: str | None,
    cash: float,
    *,
    timeframe: str = "1Day",
    adjust: bool = True,
    dataset: str = "",
    cost: CostModel | None = None,
    risk: RiskConfig | None = None,
) -> BacktestConfig:
    """The BacktestConfig of a command's options (validated: bad values raise ConfigError)."""
    config = BacktestConfig(
        symbols=list(dict.fromkeys(s.strip().upper() for s in symbols if s.strip())),
        strategy=strategy,
        params=parse_param_args(param or []),
        start=parse_day(start, "--start"),
        end=parse_day(end, "--end"),
        timeframe=timeframe,
        adjust=adjust,
        dataset=dataset,
        cash=cash,
        cost=cost or CostModel(),
        risk=risk or RiskConfig(),
    )
    if config.start and config.end and config.start > config.end:
        raise ConfigError(f"--start {config.start} is after --end {config.end}")
    return config
