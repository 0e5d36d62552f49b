"""`tape data import|list|show|fetch|shortable`: the market data backtests read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tape.cli import options as opt
from tape.cli.common import console, fmt_ts, now_ns, print_json, settings
from tape.events.render import as_dict
from tape.events.report import price_text
from tape.events.timeframes import is_intraday

data_app = typer.Typer(
    help="Import, fetch and inspect market data (bundled sample included).", no_args_is_help=True
)


@data_app.command("import")
def import_cmd(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="CSV or Parquet with date/timestamp, open, high, low, close, volume.")
    ],
    symbol: Annotated[
        str, typer.Option("--symbol", "-s", help="Symbol to store the bars under (AAPL, BRK.B, BTC/USD).")
    ],
    timeframe: Annotated[
        str | None,
        typer.Option("--timeframe", help="Bar size of the file (default: inferred from the spacing)."),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            help="Zone of timestamps written without an offset (default: UTC for a crypto pair's "
            "intraday rows, America/New_York otherwise).",
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a stored series the file does not only extend.")
    ] = False,
) -> None:
    """Validate a file of bars and store it; a bad row is named by line, and nothing is written."""
    from tape.store.bar_files import import_bars_file

    result = import_bars_file(
        file, symbol, data_path=settings(ctx).data_path, timeframe=timeframe, tz=tz, replace=replace
    )
    info = result.info
    adj = ", with adjusted close" if info.has_adj_close else ""
    daily = not is_intraday(info.timeframe)
    for note in (result.zone_note, result.timeframe_note):
        if note:
            console.print(note)
    if result.replaced:
        console.print(f"replaced {result.replaced:,} stored bars")
    console.print(
        f"imported {info.rows:,} {info.timeframe} bars of {info.symbol}{adj}: "
        f"{fmt_ts(info.first_ts, date_only=daily)} to {fmt_ts(info.last_ts, date_only=daily)}"
    )


@data_app.command("list")
def list_cmd(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json", help="JSON Lines: one object per series.")] = False,
) -> None:
    """Every series a backtest can read: imported, fetched and the bundled datasets."""
    from tape.store.market import bundled_datasets, list_datasets

    found = list_datasets(settings(ctx).data_path)
    if json:
        for info in found:
            print_json(as_dict(info))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("symbol", "timeframe", "source", "rows", "from", "to", "adj close"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for info in found:
        table.add_row(
            info.symbol,
            info.timeframe,
            info.source,
            f"{info.rows:,}",
            fmt_ts(info.first_ts, date_only=True),
            fmt_ts(info.last_ts, date_only=True),
            "yes" if info.has_adj_close else "no",
        )
    console.print(table)
    console.print("\nbundled datasets (read with --dataset NAME; validate --universe NAME):")
    for bundled in bundled_datasets():
        span = f"{bundled.first_day} to {bundled.last_day}"
        console.print(f"  {bundled.name:<9} {len(bundled.symbols):>2} symbols  {span}  {bundled.description}")


@data_app.command("show")
def show_cmd(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="Symbol to show.")],
    timeframe: Annotated[
        str | None,
        typer.Option("--timeframe", help="Bar size (a stored one or a coarser one built from it)."),
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="First day (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last day (YYYY-MM-DD).")] = None,
    no_adjust: Annotated[bool, typer.Option("--no-adjust", help="Raw prices.")] = False,
    dataset: opt.Dataset = "",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows from each end.")] = 5,
    json: Annotated[bool, typer.Option("--json", help="JSON Lines: one object per bar.")] = False,
) -> None:
    """The first and last bars of a series, as backtests read them."""
    from tape.store.market import choose_timeframe, load_bars

    data_path = settings(ctx).data_path
    bars = load_bars(
        symbol,
        data_path=data_path,
        timeframe=timeframe or choose_timeframe([symbol], data_path, dataset),
        start=start,
        end=end,
        adjust=not no_adjust,
        dataset=dataset,
    )
    n = len(bars)
    rows = sorted(set(range(min(limit, n))) | set(range(max(n - limit, 0), n)))
    if json:
        for i in rows:
            print_json(
                {
                    "symbol": bars.symbol,
                    "ts": int(bars.ts[i]),
                    "open": float(bars.open[i]),
                    "high": float(bars.high[i]),
                    "low": float(bars.low[i]),
                    "close": float(bars.close[i]),
                    "volume": float(bars.volume[i]),
                }
            )
        return
    prices = "adjusted" if bars.adjusted else "raw"
    table = Table(
        title=f"{bars.symbol} {bars.timeframe}, {n:,} bars, {prices} prices ({bars.source})", box=None
    )
    for column in ("time", "open", "high", "low", "close", "volume"):
        table.add_column(column, justify="left" if column == "time" else "right")
    for i in rows:
        table.add_row(
            fmt_ts(int(bars.ts[i])),
            *(price_text(float(col[i])) for col in (bars.open, bars.high, bars.low, bars.close)),
            f"{bars.volume[i]:,.0f}",
        )
    console.print(table)


@data_app.command("fetch")
def fetch_cmd(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="Stock (AAPL) or crypto pair (BTC/USD).")],
    days_back: Annotated[int, typer.Option("--days-back", min=1, help="How many days of history.")] = 365,
    timeframe: Annotated[str, typer.Option("--timeframe", help="1Day, 1Hour, 5Min or 1Min.")] = "1Day",
) -> None:
    """Download bars from Alpaca's historical data API (credentials from the environment or .env)."""
    from tape.actors.alpaca.data import fetch_bars
    from tape.events.symbols import normalise_symbol
    from tape.store.credentials import load_alpaca_credentials

    info = fetch_bars(
        normalise_symbol(symbol),
        days_back=days_back,
        timeframe=timeframe,
        data_path=settings(ctx).data_path,
        credentials=load_alpaca_credentials(),
        now_ns=now_ns(),
    )
    console.print(
        f"fetched {info.symbol} {info.timeframe}: {info.rows:,} bars stored, "
        f"{fmt_ts(info.first_ts)} to {fmt_ts(info.last_ts)}"
    )


@data_app.command("shortable")
def shortable_cmd(
    ctx: typer.Context,
    symbols: Annotated[
        list[str] | None, typer.Argument(help="Stocks to mark; none: list what the store holds.")
    ] = None,
    no: Annotated[bool, typer.Option("--no", help="Mark them not easy to borrow instead.")] = False,
    json: Annotated[bool, typer.Option("--json", help="One JSON object: symbol -> shortable.")] = False,
) -> None:
    """Mark stocks easy to borrow, for runs that may go short (--direction short|both).

    Such a run without its own --shortable takes the store's list for its symbols and records it in
    its config; a symbol marked --no, or never marked, is refused a short, as Alpaca refuses one that
    is not easy to borrow. A live Alpaca session reads Alpaca's own flags instead."""
    from tape.store.shortable import set_shortable, stored_shortable

    data_path = settings(ctx).data_path
    if symbols:
        marked = set_shortable(data_path, symbols, not no)
        if not json:
            state = "not easy to borrow" if no else "easy to borrow"
            console.print(f"marked {', '.join(marked)} {state} in {data_path}")
            return
    flags = stored_shortable(data_path)
    if json:
        print_json(flags)
        return
    if not flags:
        console.print(f"no shortable flags in {data_path}: mark stocks with `tape data shortable SYMBOL ...`")
        return
    for symbol, flag in flags.items():
        console.print(f"{symbol:<8} {'shortable' if flag else 'not shortable'}")
