"""The rich summary of a run: the same view after a backtest and after a replay."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from tape.cli.common import console
from tape.events.report import RunReport, market_time, price_text, trade_rows

_ROWS: list[tuple[str, str, str]] = [
    ("total_trades", "Trades", "{:,}"),
    ("total_pnl", "Net P&L", "${:,.2f}"),
    ("gross_pnl", "Gross P&L", "${:,.2f}"),
    ("total_commission", "Commission", "${:,.2f}"),
    ("total_slippage", "Slippage", "${:,.2f}"),
    ("return_pct", "Return", "{:.2f} %"),
    ("buy_hold_return_pct", "Buy & hold", "{:.2f} %"),
    ("win_rate", "Win rate", "{:.2f} %"),
    ("num_wins", "Wins", "{:,}"),
    ("num_losses", "Losses", "{:,}"),
    ("avg_win", "Avg win", "${:,.2f}"),
    ("avg_loss", "Avg loss", "${:,.2f}"),
    ("max_drawdown_pct", "Max drawdown", "{:.2f} %"),
    ("max_drawdown", "Max drawdown ($)", "${:,.2f}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("profit_factor", "Profit factor", "{:.2f}"),
    ("recovery_factor", "Recovery factor", "{:.2f}"),
    ("max_consecutive_wins", "Max consecutive wins", "{:,}"),
    ("max_consecutive_losses", "Max consecutive losses", "{:,}"),
    ("exposure_pct", "Exposure", "{:.2f} %"),
    ("final_equity", "Final equity", "${:,.2f}"),
]


def _fmt(value: Any, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def render_report(report: RunReport, *, last_trades: int = 10) -> None:
    """Print the run header, the metrics table and the last trades."""
    prices = "adjusted" if report.adjusted else "unadjusted (raw)"
    params = " ".join(f"{k}={v}" for k, v in report.params.items())
    console.print(
        f"[bold]{report.strategy}[/bold] {params} on {' '.join(report.symbols)} "
        f"{market_time(report.start_ts, report.timeframe)} → {market_time(report.end_ts, report.timeframe)} "
        f"({report.timeframe}, {prices} prices)"
    )
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="dim")
    table.add_column(justify="right")
    for key, label, pattern in _ROWS:
        table.add_row(label, _fmt(report.metrics.get(key), pattern))
    metrics = report.metrics
    if metrics.get("short_trades"):  # a long-short run: each side apart, and what borrowing cost
        for side in ("long", "short"):
            table.add_row(
                f"{side.capitalize()} trades",
                f"{metrics[f'{side}_trades']:,} · ${metrics[f'{side}_pnl']:,.2f} · "
                f"{metrics[f'{side}_win_rate']:.2f} % won",
            )
        table.add_row("Borrow fees", f"${metrics.get('total_borrow_fees', 0.0):,.2f}")
    if report.rejections:
        table.add_row("Risk rejections", ", ".join(f"{k} {v}" for k, v in report.rejections.items()))
    console.print(table)
    rows = trade_rows(report, last_trades or None)
    if not rows:
        return
    trades = Table(title=f"last {len(rows)} of {len(report.trades)} trades", title_justify="left")
    for column in ("#", "symbol", "entry", "price", "exit", "price", "qty", "net P&L", "reason"):
        trades.add_column(column, justify="right" if column in {"#", "price", "qty", "net P&L"} else "left")
    for r in rows:
        trades.add_row(
            str(r["n"]),
            r["symbol"],
            r["entry_time"],
            price_text(r["entry_price"]),
            r["exit_time"],
            price_text(r["exit_price"]),
            f"{r['qty']:g}",
            f"{r['pnl']:,.2f}",
            r["exit_reason"],
        )
    console.print(trades)
