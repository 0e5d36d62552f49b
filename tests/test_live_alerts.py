"""Live alerts end to end: `tape trade --broker alpaca --feed alpaca` (a subprocess, the real alpaca-py
clients against the local Alpaca emulator) with its notifier on a real SMTP server (aiosmtpd) and a
local webhook receiver. A feed outage over several cycles must reach a human exactly once per channel,
and the log must say when it ended.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import NamedTuple

import pytest
from aiosmtpd.controller import Controller

from tape.events.schema import Alert, CycleCompleted, NotificationFailed, NotificationSent
from tape.store.log import EventLog
from tests.alpaca_emulator import AlpacaEmulator
from tests.conftest import TapeRunner
from tests.test_live import _emulator_env, seed_crypto_minutes
from tests.test_monitor import _free_port, _Http, _Inbox

CRYPTO_BARS = "/v1beta3/crypto/us/bars"


class Channels(NamedTuple):
    """Where the session's notifications land, and the environment that points it there."""

    inbox: _Inbox
    http: _Http
    env: dict[str, str]


@pytest.fixture
def channels() -> Iterator[Channels]:
    """A real SMTP server and an HTTP webhook receiver on 127.0.0.1, stopped after the test."""
    inbox, http, port = _Inbox(), _Http(), _free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    env = {
        "TAPE_SMTP_HOST": "127.0.0.1",
        "TAPE_SMTP_PORT": str(port),
        "TAPE_SMTP_TLS": "none",
        "TAPE_SMTP_FROM": "tape@example.com",
        "TAPE_SMTP_TO": "desk@example.com",
        "TAPE_WEBHOOK_URL": f"{http.url}/hooks/alerts",
    }
    try:
        yield Channels(inbox, http, env)
    finally:
        smtp.stop()
        http.close()


def test_a_live_feed_outage_is_one_alert_one_email_one_webhook_and_clears_when_bars_answer(
    tape: TapeRunner, alpaca_emulator: AlpacaEmulator, channels: Channels, tmp_path: Path
) -> None:
    emulator = alpaca_emulator
    seed_crypto_minutes(emulator, seed=7, minutes=1440)  # a day up to now: a pair trades 24/7
    # The warm-up's bars request goes through; then every attempt of the first two cycles' requests
    # (4 each: alpaca-py retries 5xx) answers 500. The third cycle's request answers.
    emulator.fail_next(8, 500, CRYPTO_BARS, skip=1)
    args = ["trade", "BTC/USD", "--broker", "alpaca", "--feed", "alpaca", "--interval", "1s"]
    result = tape(
        *args, "--cycles", "3", "--days-back", "1", "--json", env={**_emulator_env(emulator), **channels.env}
    )
    assert result.returncode == 0, result.stderr
    assert emulator.faults._failures == []  # the outage happened, all of it
    run_id = json.loads(result.stdout.strip().splitlines()[-1])["run_id"]

    with EventLog.open(tmp_path / "tape.db", readonly=True) as log:
        events = [r.event for r in log.read(stream_prefix=f"run/{run_id}")]
    alerts = [e for e in events if isinstance(e, Alert)]
    assert [(a.rule, a.severity) for a in alerts] == [("feed", "warning"), ("feed_cleared", "info")]
    assert "HTTP 500" in alerts[0].message
    cycles = [e for e in events if isinstance(e, CycleCompleted)]
    assert [c.skipped.startswith("feed error") for c in cycles] == [True, True, False]  # each one logged
    assert alerts[0].ts == cycles[0].ts and alerts[1].ts == cycles[2].ts

    # one email and one webhook post for the one alert raised (the clearance is info: below the
    # default severity), and the log says both were delivered
    subjects = [message_from_bytes(m)["Subject"] for m in channels.inbox.messages]
    assert len(subjects) == 1 and f"] feed (run {run_id})" in subjects[0], subjects
    hooks = [json.loads(body) for path, _, body in channels.http.requests if path == "/hooks/alerts"]
    assert [(h["rule"], h["severity"], h["run_id"]) for h in hooks] == [("feed", "warning", run_id)]
    assert sorted(e.channel for e in events if isinstance(e, NotificationSent)) == ["email", "webhook"]
    assert not [e for e in events if isinstance(e, NotificationFailed)]

    listed = tape("alerts", "--run", run_id, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["rule"], r["severity"]) for r in rows] == [("feed", "warning"), ("feed_cleared", "info")]
