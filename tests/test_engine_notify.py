"""Notifications and alert thresholds of engine sessions (`tape up` / `tape spawn`), end to end: the engine
(subprocesses, against the local Alpaca emulator on its clock, tests/engine_driver.py) with a real SMTP
server (aiosmtpd) and a local webhook receiver where `tape up` runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from actors.notifier import Notifier, NotifySettings, WebhookChannel
from events.schema import Alert, NotificationFailed, NotificationSent
from store.log import EventLog, NewEvent
from tests.test_monitor import _Http


def test_a_restarted_session_notifier_sends_what_its_predecessor_left_undelivered_and_nothing_twice(
    tmp_path: Path,
) -> None:
    """The notify stream as a SIGKILLed PortfolioActor leaves it: one alert delivered, one that failed
    once and was due for a retry, one never tried. The next actor's notifier catches up on the last two."""
    log_path = tmp_path / "tape.db"
    alerts = [
        Alert(ts=t, rule=rule, message=rule) for t, rule in ((1, "feed"), (2, "broker"), (3, "drawdown"))
    ]
    http = _Http()
    try:
        channel = WebhookChannel(f"{http.url}/hook")
        with EventLog.create(log_path) as log:
            log.append_batch([NewEvent("run/r1/portfolio", a, f"r1:alert:{a.rule}") for a in alerts])
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
