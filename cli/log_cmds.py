"""`tape verify`, `tape log show|note`, `tape runs`: reading and annotating the log."""

from __future__ import annotations

import getpass
import uuid
from typing import Annotated

import typer
from rich.table import Table

from tape.cli.common import console, err_console, fmt_ts, now_ns, print_json, settings
from tape.events.errors import ConfigError
from tape.events.render import as_dict, summarize
from tape.events.schema import EVENT_TYPES, OperatorNote
from tape.store.log import EventLog
from tape.store.runs import list_runs

log_app = typer.Typer(help="Read the event log or add an operator note to it.", no_args_is_help=True)

NOTES_STREAM = "ops/notes"


def verify(
    ctx: typer.Context,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            help="Also require this head, SEQ:HASH as printed (or the hash alone), kept outside the file.",
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check the file's pages and recompute the hash chain; exit 1 naming what is damaged.

    A row edited, removed or moved is named by the first bad seq; damaged pages by SQLite's check."""
    path = settings(ctx).log_path
    with EventLog.open(path, readonly=True) as log:
        report = log.verify(expect_head=expect_head)
    if json:
        print_json(as_dict(report))
    elif report.ok:
        console.print(f"[green]ok[/green] {path}: {report.count} events, chain intact")
        console.print(f"head {report.head_seq}:{report.head_hash}")
    elif report.damaged:
        err_console.print(f"[red]DAMAGED[/red] {path}: {report.reason}")
    else:
        err_console.print(f"[red]BROKEN[/red] {path}: first bad seq {report.first_bad_seq}: {report.reason}")
    if not report.ok:
        raise typer.Exit(1)


@log_app.command("show")
def show(
    ctx: typer.Context,
    stream: Annotated[
        str | None, typer.Option("--stream", "-s", help="Only this stream (a trailing * matches a prefix).")
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", "-k", help="Only this event kind (repeatable).")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="Show the newest N matching events.")
    ] = 50,
    json: Annotated[bool, typer.Option("--json", help="JSON Lines: one object per event.")] = False,
) -> None:
    """Show events, oldest first, from the newest N that match."""
    for k in kind or []:
        if k not in EVENT_TYPES:
            raise ConfigError(f"unknown event kind {k!r}; known kinds: {', '.join(sorted(EVENT_TYPES))}")
    filters: dict[str, object] = {}
    if stream is not None and stream.endswith("*"):
        filters["stream_prefix"] = stream[:-1]
    elif stream is not None:
        filters["stream"] = stream
    with EventLog.open(settings(ctx).log_path, readonly=True) as log:
        rows = list(log.read(kinds=kind or None, limit=limit, descending=True, **filters))  # type: ignore[arg-type]
    rows.reverse()
    if json:
        for r in rows:
            print_json(
                {
                    "seq": r.seq,
                    "stream": r.stream,
                    "version": r.version,
                    "event_id": r.event_id,
                    "kind": r.kind,
                    "ts": r.ts,
                    "time": fmt_ts(r.ts),
                    "event": as_dict(r.event),
                }
            )
        return
    table = Table(box=None, pad_edge=False)
    for col in ("seq", "time (UTC)", "stream", "kind", "details"):
        table.add_column(col, no_wrap=col != "details", overflow="fold")
    for r in rows:
        table.add_row(str(r.seq), fmt_ts(r.ts), r.stream, r.kind, summarize(r.event))
    console.print(table)


@log_app.command("note")
def note(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="What to record, in plain words.")],
    author: Annotated[
        str | None, typer.Option("--author", help="Who is writing (default: your login).")
    ] = None,
) -> None:
    """Append an operator note: the human part of the audit trail."""
    if not text.strip():
        raise ConfigError("an operator note needs some text")
    who = author or _login()
    with EventLog.create(settings(ctx).log_path) as log:
        result = log.append(
            NOTES_STREAM,
            [OperatorNote(ts=now_ns(), text=text, author=who)],
            event_ids=[f"note:{uuid.uuid4().hex}"],
            durable=True,
        )
    console.print(f"noted at seq {result.first_seq}")


def runs(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json", help="JSON Lines: one object per run.")] = False,
) -> None:
    """One line a run: id, mode, strategy, symbols, period, status and net P&L."""
    with EventLog.open(settings(ctx).log_path, readonly=True) as log:
        found = list_runs(log)
    if json:
        for run in found:
            print_json(as_dict(run))
        return
    if not found:
        err_console.print("no runs in this log yet (try `tape backtest AAPL`)")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("run", "mode", "strategy", "symbols", "from", "to", "status", "trades", "net P&L"):
        table.add_column(col, justify="right" if col in ("trades", "net P&L") else "left")
    for run in found:
        table.add_row(
            run.run_id,
            run.mode,
            run.strategy,
            ",".join(run.symbols),
            fmt_ts(run.start_ts, date_only=True) if run.start_ts else "",
            fmt_ts(run.end_ts, date_only=True) if run.end_ts else "",
            run.status,
            str(run.trades),
            f"{run.net_pnl:,.2f}",
        )
    console.print(table)
    own = [run for run in found if run.origin != "built-in"]
    for run in own:  # where a user's strategy came from (built-ins: the code version says it all)
        console.print(f"{run.run_id}: {run.strategy} from {run.origin}", soft_wrap=True, highlight=False)
    unfinished = [r.run_id for r in found if r.status in ("incomplete", "stopped")]
    if unfinished:
        console.print(
            f"{len(unfinished)} run(s) not finished (killed or stopped: {', '.join(unfinished)}); "
            "repeat the command that started one (e.g. `tape trade ... --broker sim --feed replay`) "
            "to resume it from its last committed event"
        )


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return ""


@log_app.command("views")
def views_cmd(
    ctx: typer.Context,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Drop the views' projection and rebuild it from the log.")
    ] = False,
) -> None:
    """Catch up (or rebuild) the SQL views: runs, trades, orders, fills, daily_pnl, alerts, notifications."""
    from tape.store.views import VIEW_NAMES

    with EventLog.open(settings(ctx).log_path) as log:
        rows = log.rebuild_views() if rebuild else log.sync_views()
        projected, head = log.query("SELECT projected_seq, log_seq FROM views_status")[0]
    console.print(
        f"{'rebuilt' if rebuild else 'caught up'}: {rows:,} rows projected; "
        f"views hold seq {projected} of {head}"
    )
    console.print(
        f"views: {', '.join(VIEW_NAMES)} (e.g. sqlite3 {settings(ctx).log_path} 'SELECT * FROM trades')"
    )
