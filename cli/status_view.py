"""Rendering a run status (events/status.py) for the terminal: the `tape watch` screen."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tape.cli.common import fmt_ts

_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 60) -> str:
    """Unicode block sparkline of the last ``width`` values (flat series: a flat line)."""
    values = values[-width:]
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    if span <= 0:
        return _BLOCKS[0] * len(values)
    top = len(_BLOCKS) - 1
    return "".join(_BLOCKS[round((v - low) / span * top)] for v in values)


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _signed(value: float) -> Text:
    return Text(f"{value:+,.2f}", style="green" if value > 0 else "red" if value < 0 else "")


def positions_table(status: dict[str, Any]) -> Table:
    """One row per symbol, then the run's totals."""
    table = Table(title="Positions and P&L", title_justify="left", expand=False)
    for name in ("symbol", "qty", "entry", "last", "unrealised", "realised", "total", "trades"):
        table.add_column(name, justify="left" if name == "symbol" else "right")
    for symbol, row in status["positions"].items():
        table.add_row(
            symbol,
            f"{row['qty']:g}",
            _money(row["entry_price"]),
            _money(row["last_price"]),
            _signed(row["unrealized_pnl"]),
            _signed(row["realized_pnl"]),
            _signed(row["total_pnl"]),
            str(row["trades"]),
        )
    table.add_row(
        "TOTAL",
        "",
        "",
        "",
        _signed(status["unrealized_pnl"]),
        _signed(status["realized_pnl"]),
        _signed(status["total_pnl"]),
        str(sum(r["trades"] for r in status["positions"].values())),
        style="bold",
    )
    return table


def _recent(status: dict[str, Any]) -> Table:
    table = Table(title="Recent decisions", title_justify="left")
    for name in ("time", "symbol", "what", "detail"):
        table.add_column(name)
    for line in reversed(status["decisions"]):
        table.add_row(fmt_ts(line["ts"]), line["symbol"], line["kind"], line["text"])
    return table


def _alerts(status: dict[str, Any]) -> Table:
    table = Table(title=f"Alerts ({status['alert_count']})", title_justify="left")
    for name in ("time", "rule", "severity", "message"):
        table.add_column(name)
    for alert in reversed(status["alerts"]):
        table.add_row(fmt_ts(alert["ts"]), alert["rule"], alert["severity"], alert["message"])
    return table


def _health(status: dict[str, Any]) -> Text:
    parts = [f"{a['actor']}: {a['state']} (started {a['starts']}x)" for a in status["actors"]]
    lines = ["actors: " + ("; ".join(parts) if parts else "none logged")]
    channels = status["notifications"]["channels"]
    if channels:
        notes = [
            f"{name} {c['sent']} sent, {c['failed_attempts']} failed attempts, {c['given_up']} undelivered"
            for name, c in channels.items()
        ]
        lines.append("notifications: " + "; ".join(notes))
    return Text("\n".join(lines))


def status_screen(status: dict[str, Any]) -> Group:
    """The whole dashboard for one refresh."""
    equity = _money(status["equity"])
    drawdown = status["drawdown_pct"]
    head = Text.assemble(
        (f"run {status['run_id']}", "bold"),
        f"  {status['mode']} {status['strategy']} {' '.join(status['symbols'])}  state {status['state']}",
        f"  at {fmt_ts(status['last_ts']) if status['last_ts'] else '-'}",
        f"\nequity {equity}",
        f"  drawdown {drawdown:.2f}%" if drawdown is not None else "",
        f"  P&L {status['total_pnl']:+,.2f}",
    )
    curve = Text(sparkline(status["equity_curve"]) or "(no equity marks yet)", style="cyan")
    return Group(
        Panel(head, title="tape watch", expand=False),
        curve,
        positions_table(status),
        _recent(status),
        _alerts(status),
        _health(status),
    )
