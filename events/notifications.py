"""Notifications as facts: what an alert says to a human, and how delivery went (a fold of the log).

The sending itself (SMTP, SMS, webhook) is I/O and lives in actors/notifier.py; this module only words
the message and folds NotificationSent / NotificationFailed events into a per-channel health summary,
which `tape report`, `tape runs` and later `tape status` show.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tape.events.schema import Alert, Event, NotificationFailed, NotificationSent

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def subject_of(alert: Alert, run_id: str) -> str:
    """A one-line subject: severity, rule, symbol and run."""
    symbol = f" {alert.symbol}" if alert.symbol else ""
    return f"[tape {alert.severity}] {alert.rule}{symbol} (run {run_id})"


def body_of(alert: Alert, run_id: str) -> str:
    """The plain-text message: what happened, the number against its threshold, where to look."""
    lines = [
        alert.message or alert.rule,
        "",
        f"rule: {alert.rule}  severity: {alert.severity}",
        f"value: {alert.value:g}  threshold: {alert.threshold:g}",
        f"run: {run_id}  market time (ns): {alert.ts}",
    ]
    if alert.symbol:
        lines.append(f"symbol: {alert.symbol}")
    lines.append(f"details: tape log show --stream 'run/{run_id}' --kind alert")
    return "\n".join(lines) + "\n"


def payload_of(alert: Alert, run_id: str, alert_id: str) -> dict[str, Any]:
    """The JSON a webhook receives."""
    return {
        "run_id": run_id,
        "alert_id": alert_id,
        "rule": alert.rule,
        "severity": alert.severity,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold,
        "symbol": alert.symbol,
        "day": alert.day,
        "ts": alert.ts,
        "text": subject_of(alert, run_id),
    }


def notification_health(events: Iterable[Event]) -> dict[str, Any]:
    """Per channel: alerts delivered, attempts that failed, alerts given up on, and the last error.

    ``ok`` is False while any alert's last word on a channel is a final failure.
    """
    channels: dict[str, dict[str, Any]] = {}
    for event in events:
        if isinstance(event, NotificationSent | NotificationFailed):
            c = channels.setdefault(
                event.channel,
                {"sent": 0, "failed_attempts": 0, "given_up": 0, "last_error": "", "last_failure_ns": 0},
            )
            if isinstance(event, NotificationSent):
                c["sent"] += 1
            else:
                c["failed_attempts"] += 1
                c["given_up"] += event.final
                c["last_error"] = event.error
                c["last_failure_ns"] = event.wall_ns
    return {
        "ok": all(c["given_up"] == 0 for c in channels.values()),
        "channels": dict(sorted(channels.items())),
    }
