"""Notifications and alert thresholds of engine sessions (`tape up` / `tape spawn`), end to end: the engine
(subprocesses, against the local Alpaca emulator on its clock, tests/engine_driver.py) with a real SMTP
server (aiosmtpd) and a local webhook receiver where `tape up` runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest

from tape.actors import engine_host
from tape.actors.notifier import Notifier
from tape.actors.notify_channels import NotifySettings, WebhookChannel
from tape.events.schema import Alert, NotificationFailed, NotificationSent, NotifierStarted
from tape.store.log import EventLog, NewEvent
from tests.alpaca_emulator import AlpacaEmulator
from tests.conftest import TapeRunner, assert_clean_failure
from tests.engine_driver import CYCLE_TIMEOUT_S, EngineDriver
from tests.test_live import _ns
from tests.test_live_alerts import Channels
from tests.test_live_alerts import channels as channels  # the SMTP server and webhook receiver fixture
from tests.test_monitor import _Http


@pytest.fixture
def engine(tape: TapeRunner, alpaca_emulator: AlpacaEmulator, tmp_path: Path) -> Iterator[EngineDriver]:
    driver = EngineDriver(tape, alpaca_emulator, tmp_path, begin="2024-07-03 09:00")
    yield driver
    driver.kill_everything()


def _wait_for_notifications(engine: EngineDriver, run_id: str, count: int) -> list[NotificationSent]:
    """Until the run's notify stream holds ``count`` deliveries (the notifier is another process)."""
    deadline = time.monotonic() + CYCLE_TIMEOUT_S
    while True:
        sent = [r.event for r in engine.events(f"run/{run_id}/notify", "notification_sent")]
        if len(sent) >= count:
            return sent
        assert time.monotonic() < deadline, (
            f"{len(sent)} of {count} notifications within {CYCLE_TIMEOUT_S:g} s"
        )
        time.sleep(0.05)  # polling the log


def test_an_engine_session_feed_outage_reaches_email_and_webhook_once_across_down_and_up(
    engine: EngineDriver, channels: Channels
) -> None:
    engine.env.update(channels.env)  # the channels are configured where `tape up` runs
    engine.up()
    run = engine.spawn("AAPL", "--alert-drawdown", "3")
    engine.step()  # 09:30, bars answer
    # every attempt of the next two cycles' bar requests (4 each: 5xx are retried) answers 500
    engine.emulator.fail_next(8, 500, "/v2/stocks")
    for _ in range(3):
        engine.step()  # two failed cycles, then one that answers
    assert engine.emulator.faults._failures == []  # the outage happened, all of it

    sent = _wait_for_notifications(engine, run, 2)
    alerts = [r.event for r in engine.events(f"run/{run}", "alert")]
    assert [(a.rule, a.severity) for a in alerts] == [("feed", "warning"), ("feed_cleared", "info")]
    feed_alert = engine.events(f"run/{run}", "alert")[0]
    assert sorted((e.channel, e.alert_id) for e in sent) == [
        ("email", feed_alert.event_id),
        ("webhook", feed_alert.event_id),
    ]
    status = {s["symbol"]: s for s in engine.status()["sessions"]}["AAPL"]
    assert status["notifications"]["ok"] and status["monitor"]["max_drawdown_pct"] == 3.0
    assert "notifications: email 1 sent" in engine.run("status").stdout

    # `tape down` and `tape up`: the session resumes with its thresholds, and its notifier, catching up
    # on the run's alerts, finds both delivered: nothing is sent again
    engine.down()
    assert "sessions resumed: AAPL sma_cross" in engine.up().stdout
    resumed = {s["symbol"]: s for s in engine.status()["sessions"]}["AAPL"]
    assert resumed["monitor"] == status["monitor"]
    engine.step()
    engine.down()

    subjects = [message_from_bytes(m)["Subject"] for m in channels.inbox.messages]
    assert len(subjects) == 1 and f"] feed (run {run})" in subjects[0], subjects
    hooks = [json.loads(body) for path, _, body in channels.http.requests if path == "/hooks/alerts"]
    assert [(h["rule"], h["severity"], h["run_id"]) for h in hooks] == [("feed", "warning", run)]
    notify = [r.event for r in engine.events(f"run/{run}/notify")]
    assert [type(e) for e in notify if not isinstance(e, NotifierStarted)] == [NotificationSent] * 2
    assert [sorted(e.channels) for e in notify if isinstance(e, NotifierStarted)] == [
        ["email", "webhook"]
    ] * 2
    cycles = [r.event for r in engine.events(f"run/{run}", "cycle_completed")]
    assert [c.skipped.startswith("feed error") for c in cycles] == [False, True, True, False, False]


def _followed_by(channel: str) -> NewEvent:
    """The mark a notifier delivering to ``channel`` leaves when it starts following run r1."""
    return NewEvent("run/r1/notify", NotifierStarted(ts=0, channels=[channel], since_seq=0))


def _three_alerts() -> list[NewEvent]:
    return [
        NewEvent("run/r1/portfolio", Alert(ts=t, rule=rule, message=rule), f"r1:alert:{rule}")
        for t, rule in ((1, "feed"), (2, "broker"), (3, "drawdown"))
    ]


def test_a_restarted_session_notifier_sends_what_its_predecessor_left_undelivered_and_nothing_twice(
    tmp_path: Path,
) -> None:
    """The notify stream as a SIGKILLed PortfolioActor leaves it: one alert delivered, one that failed
    once and was due for a retry, one never tried. The next actor's notifier catches up on the last two."""
    log_path = tmp_path / "tape.db"
    http = _Http()
    try:
        channel = WebhookChannel(f"{http.url}/hook")
        with EventLog.create(log_path) as log:
            log.append_batch([_followed_by("webhook"), *_three_alerts()])
            log.append_batch(
                [
                    NewEvent(
                        "run/r1/notify",
                        NotificationSent(ts=1, alert_id="r1:alert:feed", channel="webhook"),
                        "notify:r1:alert:feed:webhook:sent",
                    ),
                    NewEvent(
                        "run/r1/notify",
                        NotificationFailed(
                            ts=2, alert_id="r1:alert:broker", channel="webhook", error="HTTP 500"
                        ),
                        "notify:r1:alert:broker:webhook:failed1",
                    ),
                ]
            )
        notifier = Notifier(log_path, [channel], NotifySettings(drain_s=60.0))
        notifier.follow("r1", catch_up=True)
        assert notifier.close() == {"sent": 2, "failed": 0}
    finally:
        http.close()
    assert [json.loads(body)["rule"] for _, _, body in http.requests] == ["broker", "drawdown"]
    with EventLog.open(log_path, readonly=True) as log:
        sent = [e for e in log.events(stream="run/r1/notify") if isinstance(e, NotificationSent)]
    assert [(e.alert_id, e.attempts) for e in sent] == [
        ("r1:alert:feed", 1),
        ("r1:alert:broker", 2),
        ("r1:alert:drawdown", 1),
    ]


def test_a_notifier_catching_up_sends_no_alert_raised_while_no_notifier_followed_the_run(
    tmp_path: Path,
) -> None:
    """A session ran without notifications, then `tape up` comes with a webhook: the run's old alerts
    are not sent late, the ones raised from then on are."""
    log_path = tmp_path / "tape.db"
    http = _Http()
    try:
        with EventLog.create(log_path) as log:
            log.append_batch(_three_alerts())
        notifier = Notifier(log_path, [WebhookChannel(f"{http.url}/hook")], NotifySettings(drain_s=60.0))
        notifier.follow("r1", catch_up=True)
        with EventLog.create(log_path) as log:
            log.append_batch([NewEvent("run/r1/portfolio", Alert(ts=4, rule="daily_loss", message="x"))])
        assert notifier.close() == {"sent": 1, "failed": 0}
    finally:
        http.close()
    assert [json.loads(body)["rule"] for _, _, body in http.requests] == ["daily_loss"]


def test_tape_up_with_an_incomplete_channel_stops_before_any_process_starts(engine: EngineDriver) -> None:
    engine.env["TAPE_SMTP_HOST"] = "127.0.0.1"  # email on, but no sender or recipients
    assert_clean_failure(engine.run("up", check=False), "TAPE_SMTP_FROM")
    assert not engine_host.state_path(engine.log_path).exists()


def test_an_engine_session_drawdown_alert_reaches_email_and_webhook_once(
    engine: EngineDriver, channels: Channels
) -> None:
    """The threshold `tape spawn --alert-drawdown` took is the one the session's monitor applies: on
    these bars AAPL's equity falls 0.0355 % below its peak at 10:40, past 0.03 %."""
    engine.env.update(channels.env)
    engine.up()
    run = engine.spawn("AAPL", "--alert-drawdown", "0.03")
    while engine.now < _ns("2024-07-03 11:00"):
        engine.step()

    (alert,) = [r for r in engine.events(f"run/{run}", "alert") if r.event.rule == "drawdown"]
    assert alert.event.threshold == 0.03 and alert.event.value >= 0.03
    assert alert.event.ts == _ns("2024-07-03 10:40")
    sent = _wait_for_notifications(engine, run, 2)
    assert sorted((e.channel, e.alert_id, e.rule) for e in sent) == [
        ("email", alert.event_id, "drawdown"),
        ("webhook", alert.event_id, "drawdown"),
    ]
    engine.down()
    subjects = [message_from_bytes(m)["Subject"] for m in channels.inbox.messages]
    assert len(subjects) == 1 and f"] drawdown (run {run})" in subjects[0], subjects
    hooks = [json.loads(body) for path, _, body in channels.http.requests if path == "/hooks/alerts"]
    assert [(h["rule"], h["run_id"]) for h in hooks] == [("drawdown", run)]
