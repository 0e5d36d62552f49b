"""Monitoring end to end: a replayed session (`tape trade --broker sim --feed replay`) over crafted bars
crosses each alert threshold once; each alert is one event and one email (a local SMTP server), one
webhook and one SMS (a local HTTP server); failing channels never stop trading and show in the report;
period summaries reconcile to the cent; the SQL views answer through the stdlib sqlite3 module.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller

from tape.events.costs import cents
from tape.events.monitor import (
    MonitorConfig,
    OutageRule,
    SessionMonitor,
    decide_outage,
    evolve_outages,
    expected_low,
)
from tape.events.pnl import pnl_by_strategy, pnl_by_symbol
from tape.events.schema import Alert, EquityMarked
from tape.store.log import EventLog
from tests.conftest import TapeRunner, assert_clean_failure
from tests.monitor_data import write_alert_data

RULES = {"drawdown", "daily_loss", "degradation", "feed_stalled", "actor_dead"}
STRATEGY = ["-p", "short=2", "-p", "long=4", "--qty", "600", "--max-position-size", "1000"]
PROTECT = ["--stop-loss", "0", "--take-profit", "0"]
THRESHOLDS = ["--degradation-window", "5", "--degradation-quantile", "0", "--stall-ticks", "3"]
SECRET_PASSWORD, SECRET_TOKEN = "pw-s3cret-smtp", "tok-s3cret-sms"


# --------------------------------------------------------------------------- local servers


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(envelope.content)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Http:
    """Records webhook JSON and SMS form posts; answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((self.path, dict(self.headers), body))
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.status = status
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _channels_env(smtp_port: int, http: _Http) -> dict[str, str]:
    return {
        "TAPE_SMTP_HOST": "127.0.0.1",
        "TAPE_SMTP_PORT": str(smtp_port),
        "TAPE_SMTP_TLS": "none",
        "TAPE_SMTP_FROM": "tape@example.com",
        "TAPE_SMTP_TO": "desk@example.com",
        "TAPE_SMTP_PASSWORD": SECRET_PASSWORD,  # no USER: never sent, but must never be printed either
        "TAPE_WEBHOOK_URL": f"{http.url}/hooks/secret-path",
        "TAPE_SMS_URL": http.url,
        "TAPE_SMS_ACCOUNT": "AC123",
        "TAPE_SMS_TOKEN": SECRET_TOKEN,
        "TAPE_SMS_FROM": "+15550001111",
        "TAPE_SMS_TO": "+15550002222",
        "TAPE_NOTIFY_BACKOFF": "0.05",
        "TAPE_NOTIFY_RETRIES": "2",
    }


def _prepare(tape: TapeRunner, tmp_path: Path) -> None:
    data = write_alert_data(tmp_path)
    for path, symbol in ((data.aaa, "AAA"), (data.bbb, "BBB")):
        assert tape("data", "import", str(path), "--symbol", symbol).returncode == 0
    # The reference: the same strategy over the good sessions only (through session 59).
    ran = tape("backtest", "AAA", "BBB", *STRATEGY, *PROTECT, "--end", data.days[59], "--no-files")
    assert ran.returncode == 0, ran.stderr


def _env(tmp_path: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "TAPE_LOG": str(tmp_path / "tape.db"), "TAPE_DATA": str(tmp_path / "tape-data.db")}
    env.pop("TAPE_DEBUG", None)
    env.update(extra)
    return env


def _alerts(log_path: Path, run_id: str) -> list[Alert]:
    with EventLog.open(log_path, readonly=True) as log:
        return [e for e in log.events(stream_prefix=f"run/{run_id}", kinds=("alert",))]  # type: ignore[misc]


def _kill_actor_when_started(log_path: Path, symbol: str, deadline: float) -> int:
    """Wait for the session to log its strategy actors, then kill one's worker process (SIGKILL)."""
    while time.monotonic() < deadline:
        if log_path.exists():
            with EventLog.open(log_path, readonly=True) as log:
                for record in log.read(kinds=("actor_started",)):
                    e = record.event
                    if e.symbol == symbol and e.detail.startswith("pid "):  # type: ignore[attr-defined]
                        pid = int(e.detail.split()[1].rstrip(";"))  # type: ignore[attr-defined]
                        os.kill(pid, signal.SIGKILL)
                        return pid
        time.sleep(0.05)
    raise AssertionError("the session never logged its strategy actors")


# --------------------------------------------------------------------------- the Done-when test


def test_each_threshold_crossed_once_gives_one_alert_and_one_notification_per_channel(
    tape: TapeRunner, tmp_path: Path
) -> None:
    _prepare(tape, tmp_path)
    inbox, http, port = _Inbox(), _Http(), _free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        # ~100 sessions over ~140 calendar days at 2e6 x real time: about 6 s, time to kill an actor.
        args = ["trade", "AAA", "BBB", *STRATEGY, *PROTECT, *THRESHOLDS, "--speed", "2000000", "--json"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "tape.cli.app", *args],
            cwd=tmp_path,
            env=_env(tmp_path, _channels_env(port, http)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _kill_actor_when_started(tmp_path / "tape.db", "BBB", time.monotonic() + 120)
        out, err = proc.communicate(timeout=180)
    finally:
        smtp.stop()
        http.close()
    assert proc.returncode == 0, err
    assert SECRET_PASSWORD not in out + err and SECRET_TOKEN not in out + err
    # Ray's driver prints the worker's death on stdout too; the JSON document is the last line.
    run_id = json.loads(out.strip().splitlines()[-1])["run_id"]

    alerts = _alerts(tmp_path / "tape.db", run_id)
    raised = Counter(a.rule for a in alerts if a.severity != "info")
    assert raised == dict.fromkeys(RULES, 1), raised
    assert [a.symbol for a in alerts if a.rule in ("feed_stalled", "actor_dead")] == ["BBB", "BBB"]

    # one email, one webhook and one SMS per alert
    subjects = [message_from_bytes(m)["Subject"] for m in inbox.messages]
    assert Counter(s.split("] ")[1].split()[0] for s in subjects) == dict.fromkeys(RULES, 1), subjects
    hooks = [json.loads(body) for path, _, body in http.requests if path == "/hooks/secret-path"]
    assert Counter(h["rule"] for h in hooks) == dict.fromkeys(RULES, 1)
    assert all(h["run_id"] == run_id for h in hooks)
    sms = [(h, parse_qs(body.decode())) for path, h, body in http.requests if path.endswith("Messages.json")]
    assert next(p for p, _, _ in http.requests if p.endswith("Messages.json")) == (
        "/2010-04-01/Accounts/AC123/Messages.json"
    )
    assert Counter(f["Body"][0].split("] ")[1].split()[0] for _, f in sms) == dict.fromkeys(RULES, 1)
    assert {h["Authorization"] for h, _ in sms} == {
        "Basic " + base64.b64encode(f"AC123:{SECRET_TOKEN}".encode()).decode()
    }
    assert {f["To"][0] for _, f in sms} == {"+15550002222"}

    # the outcome of every delivery is in the log, with no secret in it
    report = tape("report", "--run", run_id, "--json")
    assert report.returncode == 0, report.stderr
    health = json.loads(report.stdout)["notifications"]
    assert health["ok"] and {c: v["sent"] for c, v in health["channels"].items()} == {
        "email": 5,
        "sms": 5,
        "webhook": 5,
    }
    assert SECRET_TOKEN.encode() not in (tmp_path / "tape.db").read_bytes()
    assert "secret-path" not in json.dumps(health)

    # the replaced actor decided what the dead one would have: the same decisions as a backtest
    full = tape("backtest", "AAA", "BBB", *STRATEGY, *PROTECT, "--json", "--no-files")
    compared = json.loads(tape("compare", run_id, json.loads(full.stdout)["run_id"], "--json").stdout)
    assert compared["identical"], compared["differences"][:3]

    # and the session's period summaries add up to its total, to the cent
    for period in ("daily", "weekly", "monthly"):
        summary = json.loads(tape("report", run_id, "--period", period, "--json").stdout)
        assert summary["totals"]["reconciled"] and summary["expected"] is not None
        assert sum(cents(r["net_pnl"]) for r in summary["rows"]) == cents(summary["totals"]["run_total_pnl"])


def test_failing_channels_never_stop_trading_and_show_in_the_report_and_status(
    tape: TapeRunner, tmp_path: Path
) -> None:
    _prepare(tape, tmp_path)
    http = _Http(status=500)
    env = _channels_env(_free_port(), http)  # nothing listens on the SMTP port: connection refused
    env.pop("TAPE_SMS_ACCOUNT")
    try:
        result = tape("trade", "AAA", "BBB", *STRATEGY, *PROTECT, *THRESHOLDS, "--json", env=env)
    finally:
        http.close()
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    assert "0 delivered, 8 failed" in result.stderr
    with EventLog.open(tmp_path / "tape.db", readonly=True) as log:
        kinds = Counter(r.kind for r in log.read(stream_prefix=f"run/{run_id}"))
        failed = [e for e in log.events(stream=f"run/{run_id}/notify", kinds=("notification_failed",))]
    assert kinds["run_ended"] == 1 and kinds["alert"] >= 4  # the session ran to its end
    # 4 alerts x 2 channels x 3 attempts (1 + 2 retries), the last of each final
    assert len(failed) == 4 * 2 * 3 and sum(f.final for f in failed) == 8  # type: ignore[attr-defined]
    assert {f.channel for f in failed} == {"email", "webhook"}  # type: ignore[attr-defined]
    assert len([r for r in http.requests if r[0] == "/hooks/secret-path"]) == 4 * 3
    text = tape("report", run_id)
    assert "notifications webhook: 0 sent, 12 failed attempts, 4 undelivered" in text.stdout
    assert "HTTP 500" in text.stdout and SECRET_PASSWORD not in text.stdout
    health = json.loads(tape("report", run_id, "--json").stdout)["notifications"]
    assert not health["ok"] and health["channels"]["webhook"]["given_up"] == 4
    assert health["channels"]["email"]["given_up"] == 4
    status = json.loads(tape("status", "--run", run_id, "--json").stdout)
    assert status["notifications"] == health
    screen = tape("status", "--run", run_id).stdout
    assert "notifications: email 0 sent, 12 failed attempts, 4 undelivered" in screen
    assert SECRET_PASSWORD not in screen


def test_bad_thresholds_and_incomplete_channel_settings_fail_cleanly(tape: TapeRunner) -> None:
    assert_clean_failure(tape("trade", "AAPL", "--alert-drawdown", "150"), "--alert-drawdown")
    assert_clean_failure(tape("trade", "AAPL", "--degradation-quantile", "nan"), "--degradation-quantile")
    incomplete = {"TAPE_SMTP_HOST": "127.0.0.1", "TAPE_SMTP_PASSWORD": SECRET_PASSWORD}
    result = tape("trade", "AAPL", env=incomplete)
    assert_clean_failure(result, "TAPE_SMTP_FROM", "TAPE_SMTP_TO")
    assert SECRET_PASSWORD not in result.stderr
    assert_clean_failure(tape("trade", "AAPL", env={"TAPE_WEBHOOK_URL": "ftp://x"}), "TAPE_WEBHOOK_URL")
    assert_clean_failure(tape("trade", "AAPL", env={"TAPE_NOTIFY_RATE": "fast"}), "TAPE_NOTIFY_RATE")


# --------------------------------------------------------------------------- reports and views


@pytest.fixture(scope="module")
def busy_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real backtest with many trades: 20 stocks, fast averages."""
    root = tmp_path_factory.mktemp("busy")
    env = _env(root, {})
    args = ["backtest", "--dataset", "sp500_20", "-p", "short=2", "-p", "long=5", "--no-files"]
    symbols = ["AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO"]
    ran = subprocess.run(
        [sys.executable, "-m", "tape.cli.app", *args[:1], *symbols, *args[1:]],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    return root / "tape.db"


@pytest.mark.parametrize("period", ["daily", "weekly", "monthly"])
def test_period_summaries_add_up_to_the_run_total_to_the_cent(busy_log: Path, period: str) -> None:
    from tape.store.period_report import newest_run, period_report

    with EventLog.open(busy_log, readonly=True) as log:
        summary = period_report(log, newest_run(log), period)
    rows, totals = summary["rows"], summary["totals"]
    assert totals["trades"] > 1000 and len(rows) > 10
    assert sum(cents(r["net_pnl"]) for r in rows) == cents(totals["run_total_pnl"])
    assert sum(cents(r["equity_pnl"]) for r in rows) == cents(totals["run_equity_change"])
    assert cents(totals["run_equity_change"]) == cents(totals["run_total_pnl"])  # all closed at the end
    assert sum(r["trades"] for r in rows) == totals["trades"] and totals["reconciled"]


def test_sql_views_answer_any_sqlite_client_and_match_the_report(busy_log: Path, tape: TapeRunner) -> None:
    from tape.store.period_report import newest_run, period_report

    with EventLog.open(busy_log, readonly=True) as log:
        run_id = newest_run(log)
        daily = period_report(log, run_id, "daily")
    db = sqlite3.connect(f"file:{busy_log}?mode=ro", uri=True)  # the stdlib driver: any SQLite tool
    projected, head = db.execute("SELECT projected_seq, log_seq FROM views_status").fetchone()
    assert projected == head
    trades, net = db.execute(
        "SELECT COUNT(*), SUM(net_pnl) FROM trades WHERE run_id = ?", (run_id,)
    ).fetchone()
    assert trades == daily["totals"]["trades"] and cents(net) == cents(daily["totals"]["net_pnl"])
    by_day = dict(db.execute("SELECT day, net_pnl FROM daily_pnl WHERE run_id = ?", (run_id,)).fetchall())
    assert {r["period"]: r["net_pnl"] for r in daily["rows"]} == by_day
    statuses = dict(db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status").fetchall())
    fills = db.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    assert statuses["filled"] == fills == 2 * trades
    assert db.execute("SELECT COUNT(*) FROM runs WHERE status = 'completed'").fetchone()[0] == 1
    with pytest.raises(sqlite3.OperationalError):
        db.execute("DELETE FROM events WHERE seq = 1")  # still read-only here, and append-only anyway
    db.close()
    verified = tape("--log", str(busy_log), "verify")
    assert verified.returncode == 0 and "chain intact" in verified.stdout


def test_an_old_log_gets_the_views_when_a_writer_opens_it(busy_log: Path, tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old.db"
    shutil.copy(busy_log, old)
    raw = sqlite3.connect(old)
    for view in ("runs", "trades", "orders", "fills", "daily_pnl", "alerts", "notifications", "views_status"):
        raw.execute(f"DROP VIEW {view}")
    for table in [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE name LIKE 'proj_%'")]:
        if not table.endswith(("_by_id", "_by_order")):
            raw.execute(f"DROP TABLE {table}")
    raw.execute("DROP TABLE tape_views")
    raw.commit()
    raw.close()
    with EventLog.open(old) as log:  # a read-write open migrates
        log.count()
    db = sqlite3.connect(old)
    assert db.execute("SELECT COUNT(*) FROM trades").fetchone()[0] > 1000
    db.close()


# --------------------------------------------------------------------------- the pure parts


def test_pnl_per_symbol_and_strategy_adds_up_and_marks_open_positions(busy_log: Path) -> None:
    from tape.store.period_report import newest_run
    from tape.store.runs import run_events

    with EventLog.open(busy_log, readonly=True) as log:
        events = [r.event for r in run_events(log, newest_run(log))]
    total = sum(cents(row["realized_pnl"]) for row in pnl_by_symbol(events).values())
    [strategy] = pnl_by_strategy(events).values()
    assert cents(strategy["realized_pnl"]) == total and strategy["unrealized_pnl"] == 0.0
    # halfway through the run some positions are open: marked at the last price the log saw
    half = events[: len(events) // 2]
    rows = pnl_by_symbol(half)
    held = {s: r for s, r in rows.items() if r["qty"]}
    assert held
    for row in held.values():
        expected = cents(row["qty"] * row["last_price"]) - cents(row["qty"] * row["entry_price"])
        assert cents(row["unrealized_pnl"]) <= expected  # minus the entry commission
        assert cents(row["total_pnl"]) == cents(row["realized_pnl"]) + cents(row["unrealized_pnl"])


def test_rules_fire_once_until_they_clear() -> None:
    monitor = SessionMonitor(MonitorConfig(max_drawdown_pct=10.0, daily_loss_pct=0.0), 100.0)

    def tick(equity: float, peak: float = 100.0) -> list[str]:
        alerts = monitor.after_timestamp(
            [], ts=1, day="1", equity=equity, peak=peak, day_start_equity=100.0, reported=None
        )
        return [a.rule for a in alerts]

    assert tick(95.0) == []
    assert tick(89.0) == ["drawdown"]
    assert tick(88.0) == [] and tick(91.0) == []  # still alerted: no repeat around the threshold
    assert tick(96.0) == ["drawdown_cleared"]  # under half the threshold: re-armed
    assert tick(89.5) == ["drawdown"]


def test_the_daily_loss_alert_is_shared_with_the_risk_gate_once_a_day() -> None:
    monitor = SessionMonitor(MonitorConfig(max_drawdown_pct=0.0, daily_loss_pct=5.0), 100.0)
    gate = Alert(ts=1, rule="daily_loss", severity="critical", day="7")
    assert (
        monitor.after_timestamp(
            [gate], ts=1, day="7", equity=94.0, peak=100.0, day_start_equity=100.0, reported=None
        )
        == []
    )
    again = monitor.after_timestamp(
        [], ts=2, day="8", equity=88.0, peak=100.0, day_start_equity=94.0, reported=None
    )
    assert [(a.rule, a.day) for a in again] == [("daily_loss", "8")]


def test_degradation_compares_the_rolling_window_with_the_backtest_range() -> None:
    assert expected_low([1.0, 2.0, 3.0, 4.0, 5.0], 0.0) == 1.0
    assert expected_low([1.0, 2.0, 3.0, 4.0, 5.0], 25.0) == 2.0
    config = MonitorConfig(degradation_window=2, expected_low_pct=1.0, daily_loss_pct=0, max_drawdown_pct=0)
    monitor = SessionMonitor(config, 100.0)
    fired = []
    for equity in (101.0, 102.0, 103.0, 102.0, 101.5, 104.0):
        mark = EquityMarked(ts=1, equity=equity, cash=0.0, peak=equity, bars=1, bars_in_market=1)
        fired += [
            a.rule
            for a in monitor.after_timestamp(
                [mark], ts=1, day="1", equity=equity, peak=110.0, day_start_equity=equity, reported=None,
                marked=True,
            )
        ]  # fmt: skip
    assert fired == ["degradation", "degradation_cleared"]


def test_live_outages_alert_once_and_clear_on_the_first_answer() -> None:
    log: list[Alert] = []

    def outcome(rule: OutageRule, failure: str | None, answered: bool = True) -> list[str]:
        raised = frozenset[str]()
        for event in log:  # the state is a fold of the log: a restart would see the same
            raised = evolve_outages(raised, event)
        alerts = decide_outage(raised, rule, len(log), failure=failure, answered=answered)
        log.extend(alerts)
        return [f"{a.rule}/{a.severity}" for a in alerts]

    assert outcome("feed", "HTTP 503") == ["feed/warning"]
    assert outcome("feed", "HTTP 503") == [] and outcome("feed", "timeout") == []  # still the outage
    assert outcome("broker", "no answer") == ["broker/warning"]  # a rule of its own
    assert outcome("feed", None) == ["feed_cleared/info"]
    assert outcome("broker", None, answered=False) == []  # nothing was asked: still standing
    assert outcome("broker", None) == ["broker_cleared/info"]
    assert outcome("feed", None) == []  # nothing to clear
    assert outcome("feed", "HTTP 500") == ["feed/warning"]  # re-armed
