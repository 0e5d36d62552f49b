"""SQL views over the log (``trades``, ``orders``, ``fills``, ``daily_pnl``, ``alerts``, ``runs``,
``notifications``) for any SQLite tool.

Event bodies are msgpack arrays, which SQLite cannot read, and storing a JSON copy of every body would
double the file and slow the batched append path. So the views read small projection tables
(``proj_*``) holding the decoded fields of the few kinds they need. The projection is derived data:

- it is caught up by :func:`sync_views` when a read-write connection opens or closes the log (and by
  a live session after each cycle), never inside an append, so the append rate is untouched;
- it is a pure function of the events up to ``tape_views.projected_seq`` (the view ``views_status``
  shows it beside the log's head), so it can always be thrown away and rebuilt
  (:func:`rebuild_views`, ``tape log views --rebuild``);
- it is not part of the hash chain; ``tape verify`` checks the events only, and the append-only
  triggers stay on ``events``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import apsw
import msgspec

from tape.events.schema import decode

VIEWS_VERSION = 1
_NY = ZoneInfo("America/New_York")

TABLES = """
CREATE TABLE IF NOT EXISTS tape_views(
    id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, projected_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS proj_runs(seq INTEGER PRIMARY KEY, run_id TEXT, ts INTEGER, mode TEXT,
    strategy TEXT, symbols TEXT, timeframe TEXT, cash REAL, label TEXT, parent_run TEXT);
CREATE TABLE IF NOT EXISTS proj_run_ends(seq INTEGER PRIMARY KEY, run_id TEXT, ts INTEGER, status TEXT,
    bars INTEGER);
CREATE TABLE IF NOT EXISTS proj_orders(seq INTEGER PRIMARY KEY, run_id TEXT, ts INTEGER, event TEXT,
    client_order_id TEXT, intent_id TEXT, symbol TEXT, side TEXT, qty REAL, order_type TEXT,
    limit_price REAL, stop_price REAL, reason TEXT, strategy TEXT, broker_order_id TEXT);
CREATE INDEX IF NOT EXISTS proj_orders_by_id ON proj_orders(client_order_id);
CREATE TABLE IF NOT EXISTS proj_fills(seq INTEGER PRIMARY KEY, run_id TEXT, ts INTEGER, day TEXT,
    client_order_id TEXT, exec_id TEXT, symbol TEXT, side TEXT, qty REAL, price REAL, commission REAL,
    slippage REAL, reason TEXT);
CREATE INDEX IF NOT EXISTS proj_fills_by_order ON proj_fills(client_order_id);
CREATE TABLE IF NOT EXISTS proj_trades(seq INTEGER PRIMARY KEY, run_id TEXT, symbol TEXT, strategy TEXT,
    qty REAL, entry_ts INTEGER, exit_ts INTEGER, exit_day TEXT, entry_price REAL, exit_price REAL,
    exit_reason TEXT, gross_pnl REAL, commission REAL, net_pnl REAL, slippage REAL);
CREATE TABLE IF NOT EXISTS proj_marks(seq INTEGER PRIMARY KEY, run_id TEXT, ts INTEGER, day TEXT,
    equity REAL, cash REAL, peak REAL, drawdown REAL, drawdown_pct REAL);
CREATE TABLE IF NOT EXISTS proj_alerts(seq INTEGER PRIMARY KEY, run_id TEXT, ts INTEGER, rule TEXT,
    severity TEXT, message TEXT, value REAL, threshold REAL, symbol TEXT, day TEXT);
CREATE TABLE IF NOT EXISTS proj_notifications(seq INTEGER PRIMARY KEY, run_id TEXT, ts INTEGER,
    outcome TEXT, alert_id TEXT, channel TEXT, rule TEXT, attempt INTEGER, final INTEGER, error TEXT,
    target TEXT, wall_ns INTEGER);
"""

_TIME = "strftime('%Y-%m-%dT%H:%M:%SZ', {col} / 1000000000, 'unixepoch')"

VIEWS = f"""
CREATE VIEW IF NOT EXISTS runs AS
SELECT r.run_id, r.mode, r.strategy, r.symbols, r.timeframe, r.cash AS start_cash, r.label, r.parent_run,
       {_TIME.format(col="r.ts")} AS started, {_TIME.format(col="e.ts")} AS ended,
       COALESCE(e.status, 'running') AS status, e.bars, r.seq
FROM proj_runs r LEFT JOIN proj_run_ends e ON e.run_id = r.run_id;

CREATE VIEW IF NOT EXISTS trades AS
SELECT run_id, seq, symbol, strategy, qty, {_TIME.format(col="entry_ts")} AS entry_time,
       {_TIME.format(col="exit_ts")} AS exit_time, exit_day, entry_price, exit_price, exit_reason,
       gross_pnl, commission, slippage, net_pnl
FROM proj_trades;

CREATE VIEW IF NOT EXISTS fills AS
SELECT run_id, seq, {_TIME.format(col="ts")} AS time, day, client_order_id, exec_id, symbol, side, qty,
       price, commission, slippage, reason
FROM proj_fills;

CREATE VIEW IF NOT EXISTS orders AS
SELECT o.run_id, o.seq, {_TIME.format(col="o.ts")} AS time, o.client_order_id, o.intent_id, o.symbol,
       o.side, o.qty, o.order_type, o.limit_price, o.stop_price, o.reason, o.strategy,
       CASE
         WHEN EXISTS (SELECT 1 FROM proj_fills f WHERE f.client_order_id = o.client_order_id
                      AND f.run_id = o.run_id) THEN 'filled'
         ELSE COALESCE((SELECT x.event FROM proj_orders x WHERE x.client_order_id = o.client_order_id
                        AND x.run_id = o.run_id AND x.event IN ('rejected', 'cancelled')
                        ORDER BY x.seq DESC LIMIT 1), 'working')
       END AS status,
       (SELECT SUM(f.qty) FROM proj_fills f WHERE f.client_order_id = o.client_order_id
        AND f.run_id = o.run_id) AS filled_qty,
       (SELECT SUM(f.qty * f.price) / SUM(f.qty) FROM proj_fills f
        WHERE f.client_order_id = o.client_order_id AND f.run_id = o.run_id) AS avg_fill_price
FROM proj_orders o WHERE o.event = 'submitted';

CREATE VIEW IF NOT EXISTS daily_pnl AS
WITH days AS (
    SELECT run_id, exit_day AS day FROM proj_trades UNION SELECT run_id, day FROM proj_marks),
closed AS (
    SELECT run_id, exit_day AS day, COUNT(*) AS trades, SUM(net_pnl > 0) AS wins,
           ROUND(SUM(gross_pnl), 2) AS gross_pnl, ROUND(SUM(commission), 2) AS commission,
           ROUND(SUM(net_pnl), 2) AS net_pnl
    FROM proj_trades GROUP BY run_id, exit_day),
closes AS (
    SELECT m.run_id, m.day, m.equity FROM proj_marks m
    WHERE m.seq = (SELECT MAX(seq) FROM proj_marks x WHERE x.run_id = m.run_id AND x.day = m.day)),
joined AS (
    SELECT d.run_id, d.day, COALESCE(c.trades, 0) AS trades, COALESCE(c.wins, 0) AS wins,
           COALESCE(c.gross_pnl, 0.0) AS gross_pnl, COALESCE(c.commission, 0.0) AS commission,
           COALESCE(c.net_pnl, 0.0) AS net_pnl, e.equity
    FROM days d LEFT JOIN closed c ON c.run_id = d.run_id AND c.day = d.day
    LEFT JOIN closes e ON e.run_id = d.run_id AND e.day = d.day)
SELECT j.run_id, j.day, j.trades, j.wins, j.gross_pnl, j.commission, j.net_pnl,
       ROUND(j.equity, 2) AS equity,
       ROUND(j.equity - COALESCE(LAG(j.equity) OVER w, r.cash), 2) AS equity_pnl
FROM joined j LEFT JOIN proj_runs r ON r.run_id = j.run_id
WINDOW w AS (PARTITION BY j.run_id ORDER BY j.day);

CREATE VIEW IF NOT EXISTS alerts AS
SELECT run_id, seq, {_TIME.format(col="ts")} AS time, rule, severity, message, value, threshold, symbol, day
FROM proj_alerts;

CREATE VIEW IF NOT EXISTS notifications AS
SELECT run_id, seq, {_TIME.format(col="ts")} AS alert_time,
       strftime('%Y-%m-%dT%H:%M:%SZ', wall_ns / 1000000000, 'unixepoch') AS time, outcome, alert_id, channel,
       rule, attempt, final, error, target
FROM proj_notifications;

CREATE VIEW IF NOT EXISTS views_status AS
SELECT (SELECT projected_seq FROM tape_views) AS projected_seq,
       (SELECT MAX(seq) FROM events) AS log_seq;
"""

VIEW_NAMES = ("runs", "trades", "orders", "fills", "daily_pnl", "alerts", "notifications", "views_status")
PROJECTION_TABLES = (
    "proj_runs",
    "proj_run_ends",
    "proj_orders",
    "proj_fills",
    "proj_trades",
    "proj_marks",
    "proj_alerts",
    "proj_notifications",
)


_HOUR = 3_600_000_000_000
_DAY_OF_HOUR: dict[int, str] = {}


def _day(ts: int) -> str:
    """The exchange (New York) date of a time; cached per UTC hour (DST moves on hour boundaries)."""
    hour = ts // _HOUR
    day = _DAY_OF_HOUR.get(hour)
    if day is None:
        moment = dt.datetime.fromtimestamp(hour * 3600, tz=dt.UTC).astimezone(_NY)
        day = _DAY_OF_HOUR[hour] = moment.date().isoformat()
    return day


def _session(day: str) -> str:
    """An alert's day as a date: the risk gate writes the session as days since the epoch."""
    if day.isdigit():
        return (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()
    return day


def _run_of(stream: str) -> str:
    parts = stream.split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "run" else ""


Row = tuple[str, tuple[Any, ...]]


def _run_started(seq: int, run: str, e: Any) -> Row:
    cash = e.config.get("cash") if isinstance(e.config, dict) else None
    return "proj_runs", (
        seq,
        e.run_id,
        e.ts,
        e.mode,
        e.strategy,
        ",".join(e.symbols),
        e.timeframe,
        cash,
        e.label,
        e.parent_run,
    )


def _order(event: str) -> Callable[[int, str, Any], Row]:
    """Order lifecycle events share one table; fields an event does not have are NULL."""
    fields = ("intent_id", "symbol", "side", "qty", "order_type", "limit_price", "stop_price", "reason")

    def row(seq: int, run: str, e: Any) -> Row:
        values = [getattr(e, f, None) for f in fields]
        extra = (getattr(e, "strategy", None), getattr(e, "broker_order_id", None))
        return "proj_orders", (seq, run, e.ts, event, e.client_order_id, *values, *extra)

    return row


_PROJECT: dict[str, Callable[[int, str, Any], Row]] = {
    "run_started": _run_started,
    "run_ended": lambda seq, run, e: ("proj_run_ends", (seq, e.run_id, e.ts, e.status, e.bars)),
    "order_submitted": _order("submitted"),
    "order_acknowledged": _order("acknowledged"),
    "order_rejected": _order("rejected"),
    "order_cancelled": _order("cancelled"),
    "fill": lambda seq, run, e: (
        "proj_fills",
        (
            seq,
            run,
            e.ts,
            _day(e.ts),
            e.client_order_id,
            e.exec_id,
            e.symbol,
            e.side,
            e.qty,
            e.price,
            e.commission,
            e.slippage,
            e.reason,
        ),
    ),
    "position_closed": lambda seq, run, e: (
        "proj_trades",
        (
            seq,
            run,
            e.symbol,
            e.strategy,
            e.qty,
            e.entry_ts,
            e.ts,
            _day(e.ts),
            e.entry_price,
            e.exit_price,
            e.exit_reason,
            e.gross_pnl,
            e.commission,
            e.net_pnl,
            e.slippage,
        ),
    ),
    "equity_marked": lambda seq, run, e: (
        "proj_marks",
        (seq, run, e.ts, _day(e.ts), e.equity, e.cash, e.peak, e.drawdown, e.drawdown_pct),
    ),
    "alert": lambda seq, run, e: (
        "proj_alerts",
        (seq, run, e.ts, e.rule, e.severity, e.message, e.value, e.threshold, e.symbol, _session(e.day)),
    ),
    "notification_sent": lambda seq, run, e: (
        "proj_notifications",
        (seq, run, e.ts, "sent", e.alert_id, e.channel, e.rule, e.attempts, 0, "", e.target, e.wall_ns),
    ),
    "notification_failed": lambda seq, run, e: (
        "proj_notifications",
        (
            seq,
            run,
            e.ts,
            "failed",
            e.alert_id,
            e.channel,
            e.rule,
            e.attempt,
            int(e.final),
            e.error,
            e.target,
            e.wall_ns,
        ),
    ),
}
PROJECTED_KINDS = tuple(_PROJECT)
_WIDTH = {
    "proj_runs": 10,
    "proj_run_ends": 5,
    "proj_orders": 15,
    "proj_fills": 13,
    "proj_trades": 15,
    "proj_marks": 9,
    "proj_alerts": 10,
    "proj_notifications": 12,
}
_INSERT = {t: f"INSERT INTO {t} VALUES ({','.join('?' * n)})" for t, n in _WIDTH.items()}


def has_views(conn: apsw.Connection) -> bool:
    """Whether the log carries the projection and its views (a log written before they existed not)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='tape_views'").fetchone()
    return row is not None


def ensure_views(conn: apsw.Connection) -> None:
    """Create the projection tables and views when missing (new logs and old ones alike)."""
    if has_views(conn):
        return
    with conn:
        conn.execute(TABLES)
        conn.execute(VIEWS)
        conn.execute("INSERT OR IGNORE INTO tape_views VALUES (1, ?, 0)", (VIEWS_VERSION,))


class Projector:
    """Turns stored rows into projection rows and inserts them (used by a sync and by a streamed run)."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {}

    def add(self, seq: int, stream: str, kind: str, body: bytes) -> None:
        """Project one event if its kind feeds a view (a body that does not decode is skipped:
        `tape verify` reports damage; the projection mirrors what it can read)."""
        project = _PROJECT.get(kind)
        if project is None:
            return
        try:
            event = decode(body)
        except msgspec.DecodeError:
            return
        table, values = project(seq, _run_of(stream), event)
        self.rows.setdefault(table, []).append(values)

    def flush(self, conn: apsw.Connection) -> int:
        """Insert what was projected (inside the caller's transaction); returns the row count."""
        total = 0
        for table, values in self.rows.items():
            conn.executemany(_INSERT[table], values)
            total += len(values)
        self.rows = {}
        return total


def projected_seq(conn: apsw.Connection) -> int | None:
    """The last seq the projection holds (None without views)."""
    if not has_views(conn):
        return None
    return int(conn.execute("SELECT projected_seq FROM tape_views").fetchone()[0])


def sync_views(conn: apsw.Connection, batch: int = 50_000) -> int:
    """Project the events appended since the last sync, in write transactions of ``batch`` events;
    returns how many rows were projected."""
    total = 0
    marks = ",".join("?" * len(PROJECTED_KINDS))
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            (after,) = conn.execute("SELECT projected_seq FROM tape_views").fetchone()
            head = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0
            upto = min(head, after + batch)
            if upto <= after:
                conn.execute("COMMIT")
                return total
            projector = Projector()
            for seq, stream, kind, body in conn.execute(
                "SELECT seq, stream, kind, body FROM events "
                f"WHERE seq > ? AND seq <= ? AND kind IN ({marks})",
                (after, upto, *PROJECTED_KINDS),
            ):
                projector.add(seq, stream, kind, body)
            total += projector.flush(conn)
            conn.execute("UPDATE tape_views SET projected_seq = ?", (upto,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def rebuild_views(conn: apsw.Connection) -> int:
    """Throw the projection away and project the whole log again; returns the rows projected."""
    with conn:
        for name in VIEW_NAMES:
            conn.execute(f"DROP VIEW IF EXISTS {name}")
        for table in (*PROJECTION_TABLES, "tape_views"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    ensure_views(conn)
    return sync_views(conn)
