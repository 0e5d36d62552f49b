"""Options several commands share, declared once, and the config they build."""

from __future__ import annotations

import math
from typing import Annotated

import typer

# The config builders are the Python API's: a command and its API call build the same config.
from tape.arguments import build_config, cost_model, parse_day, resolve_strategy, risk_config

__all__ = ["build_config", "cost_model", "parse_day", "resolve_strategy", "risk_config"]


def finite(value: float | None) -> float | None:
    """Refuse inf and nan for a numeric option: no amount, price or percentage is infinite."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


Symbols = Annotated[list[str], typer.Argument(help="One or more symbols; several share cash and limits.")]
NoCheck = Annotated[
    bool,
    typer.Option(
        "--no-check",
        help="Skip the quick look-ahead and equality check of a non-built-in strategy (recorded on the run).",
    ),
]
Strategy = Annotated[
    str,
    typer.Option(
        "--strategy",
        "-s",
        help="A strategy: a name (see `tape strategies`), path/to/file.py[:Class] or package.module:Class.",
    ),
]
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
