"""Alert notifications: email (SMTP), SMS (a Twilio-style REST API) and a JSON webhook.

A :class:`Notifier` runs in a background thread of the trading process. It follows the run's Alert
events in the log (so it sends whatever raised them: the monitor, the risk gate, the live feed), sends
each to every configured channel, and records every outcome in the log (``run/<run_id>/notify``):
NotificationSent, or NotificationFailed per failed attempt (``final`` when it gives up). Sending never
blocks trading: the session only appends alerts; a slow or dead server delays nothing but this thread.
Retries back off exponentially; each channel is rate-limited (a token bucket), and what waits for a
token is sent later, not dropped.

Configuration comes from the environment (see :func:`channels_from_env` and the README). Secrets
(passwords, tokens, webhook paths) never appear in events, errors or output.
"""

from __future__ import annotations

import base64
import json
import os
import smtplib
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from tape.events.errors import ConfigError
from tape.events.notifications import SEVERITY_RANK, body_of, payload_of, subject_of
from tape.events.schema import Alert, Event, NotificationFailed, NotificationSent, NotifierStarted
from tape.store.log import EventLog, NewEvent

POLL_SECONDS = 0.1


class DeliveryError(Exception):
    """A channel could not deliver (the message is already free of secrets)."""


class Channel(Protocol):
    """Something that can deliver an alert."""

    name: str
    target: str  # where, without secrets

    def send(self, alert: Alert, run_id: str, alert_id: str) -> None: ...


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:300]


class EmailChannel:
    """SMTP with optional STARTTLS or implicit TLS and login."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: list[str],
        *,
        user: str = "",
        password: str = "",
        tls: str = "starttls",
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender, self.recipients = host, port, sender, recipients
        self._user, self._password, self._tls, self._timeout = user, password, tls, timeout
        self.target = f"{host}:{port}"

    def send(self, alert: Alert, run_id: str, alert_id: str) -> None:
        message = EmailMessage()
        message["Subject"] = subject_of(alert, run_id)
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["X-Tape-Alert-Id"] = alert_id
        message.set_content(body_of(alert, run_id))
        try:
            factory = smtplib.SMTP_SSL if self._tls == "ssl" else smtplib.SMTP
            with factory(self.host, self.port, timeout=self._timeout) as smtp:
                if self._tls == "starttls":
                    smtp.starttls()
                if self._user:
                    smtp.login(self._user, self._password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(
                _scrub(f"{type(exc).__name__}: {exc}", [self._password, self._user])
            ) from None


def _post(url: str, data: bytes, headers: dict[str, str], timeout: float, secrets: Sequence[str]) -> None:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} {exc.reason}") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(_scrub(f"{type(exc).__name__}: {reason}", secrets)) from None


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


class WebhookChannel:
    """A JSON POST (see :func:`events.notifications.payload_of`) to any URL."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._url, self._timeout = url, timeout
        self.target = _origin(url)  # the path and query of a webhook are often its secret

    def send(self, alert: Alert, run_id: str, alert_id: str) -> None:
        body = json.dumps(payload_of(alert, run_id, alert_id)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "tape-notifier"}
        _post(self._url, body, headers, self._timeout, [self._url])


class SmsChannel:
    """Twilio's Messages API shape: a form POST to ``{base}/2010-04-01/Accounts/{account}/Messages.json``
    with basic auth (account, token); one request per recipient."""

    name = "sms"

    def __init__(
        self,
        base_url: str,
        account: str,
        token: str,
        sender: str,
        recipients: list[str],
        timeout: float = 10.0,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{urllib.parse.quote(account)}/Messages.json"
        self._auth = base64.b64encode(f"{account}:{token}".encode()).decode()
        self._secrets = [token, account]
        self._sender, self._recipients, self._timeout = sender, recipients, timeout
        self.target = ",".join(_mask(r) for r in recipients)

    def send(self, alert: Alert, run_id: str, alert_id: str) -> None:
        text = f"{subject_of(alert, run_id)}: {alert.message}"[:320]
        headers = {
            "Authorization": f"Basic {self._auth}",
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "tape-notifier",
        }
        for recipient in self._recipients:
            form = urllib.parse.urlencode({"To": recipient, "From": self._sender, "Body": text}).encode()
            _post(self._url, form, headers, self._timeout, self._secrets)


def _mask(number: str) -> str:
    return number[:3] + "***" + number[-2:] if len(number) > 6 else "***"


# --------------------------------------------------------------------------- configuration


class NotifySettings(NamedTuple):
    """How the notifier paces itself (environment: TAPE_NOTIFY_*)."""

    rate_per_minute: float = 10.0
    retries: int = 3
    backoff_s: float = 2.0
    min_severity: str = "warning"
    drain_s: float = 30.0


DEFAULT_SETTINGS = NotifySettings()


def _number(env: Mapping[str, str], name: str, default: float, low: float, kind: type = float) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value >= low:
        raise ConfigError(f"{name} must be at least {low:g}, got {raw}")
    return value


def _required(env: Mapping[str, str], prefix: str, names: Sequence[str]) -> dict[str, str]:
    values = {n: env.get(f"{prefix}{n}", "").strip() for n in names}
    missing = [f"{prefix}{n}" for n, v in values.items() if not v]
    if missing:
        raise ConfigError(f"{prefix}* notifications need {', '.join(missing)} (see README, Notifications)")
    return values


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _url(name: str, url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL with a host")
    return url


def channels_from_env(env: Mapping[str, str] | None = None) -> tuple[list[Channel], NotifySettings]:
    """The channels the environment configures (none: no notifier) and the pacing settings.

    A channel is on when its first variable is set (TAPE_SMTP_HOST, TAPE_WEBHOOK_URL, TAPE_SMS_ACCOUNT);
    then its other required variables must be set too, or this raises a ConfigError naming them.
    """
    env = os.environ if env is None else env
    timeout = _number(env, "TAPE_NOTIFY_TIMEOUT", 10.0, 0.1)
    channels: list[Channel] = []
    if env.get("TAPE_SMTP_HOST", "").strip():
        smtp = _required(env, "TAPE_SMTP_", ["HOST", "FROM", "TO"])
        tls = env.get("TAPE_SMTP_TLS", "starttls").strip().lower() or "starttls"
        if tls not in ("starttls", "ssl", "none"):
            raise ConfigError(f"TAPE_SMTP_TLS must be starttls, ssl or none, got {tls!r}")
        port = _number(env, "TAPE_SMTP_PORT", 465 if tls == "ssl" else 587, 1, int)
        if port > 65535:
            raise ConfigError(f"TAPE_SMTP_PORT must be a TCP port (1-65535), got {port}")
        channels.append(
            EmailChannel(
                smtp["HOST"],
                port,
                smtp["FROM"],
                _list(smtp["TO"]),
                user=env.get("TAPE_SMTP_USER", ""),
                password=env.get("TAPE_SMTP_PASSWORD", ""),
                tls=tls,
                timeout=timeout,
            )
        )
    if env.get("TAPE_WEBHOOK_URL", "").strip():
        channels.append(WebhookChannel(_url("TAPE_WEBHOOK_URL", env["TAPE_WEBHOOK_URL"].strip()), timeout))
    if env.get("TAPE_SMS_ACCOUNT", "").strip():
        sms = _required(env, "TAPE_SMS_", ["ACCOUNT", "TOKEN", "FROM", "TO"])
        base = _url("TAPE_SMS_URL", env.get("TAPE_SMS_URL", "").strip() or "https://api.twilio.com")
        channels.append(
            SmsChannel(base, sms["ACCOUNT"], sms["TOKEN"], sms["FROM"], _list(sms["TO"]), timeout)
        )
    severity = env.get("TAPE_NOTIFY_SEVERITY", "warning").strip().lower() or "warning"
    if severity not in SEVERITY_RANK:
        raise ConfigError(f"TAPE_NOTIFY_SEVERITY must be info, warning or critical, got {severity!r}")
    settings = NotifySettings(
        rate_per_minute=_number(env, "TAPE_NOTIFY_RATE", 10.0, 0.01),
        retries=_number(env, "TAPE_NOTIFY_RETRIES", 3, 0, int),
        backoff_s=_number(env, "TAPE_NOTIFY_BACKOFF", 2.0, 0.0),
        min_severity=severity,
        drain_s=_number(env, "TAPE_NOTIFY_DRAIN", 30.0, 0.0),
    )
    return channels, settings


# --------------------------------------------------------------------------- the background sender


class _Job(NamedTuple):
    due: float
    alert: Alert
    alert_id: str
    channel: Channel
    attempt: int


class _Bucket:
    """A token bucket: ``rate`` messages a minute, bursts up to the same number."""

    def __init__(self, rate_per_minute: float, now: float) -> None:
        self.capacity = max(1.0, rate_per_minute)
        self.tokens, self.rate, self.stamp = self.capacity, rate_per_minute / 60.0, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Notifier:
    """Follows one run's alerts in the log and delivers them; see the module docstring."""

    def __init__(
        self,
        log_path: Path,
        channels: Sequence[Channel],
        settings: NotifySettings = DEFAULT_SETTINGS,
        *,
        now: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._log_path, self._channels, self._settings = Path(log_path), list(channels), settings
        self._now, self._wall_ns = now, wall_ns
        self._run_id = ""
        self._cursor = 0
        self._jobs: list[_Job] = []
        self._counts = {"sent": 0, "failed": 0}
        self._buckets = {c.name: _Bucket(settings.rate_per_minute, now()) for c in self._channels}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._give_up_at_end = True
        self._thread: threading.Thread | None = None
        self._settled: set[tuple[str, str]] = set()  # (alert id, channel) the notify stream closed
        self._attempts: dict[tuple[str, str], int] = {}  # failed attempts the notify stream holds
        self._since: dict[str, int] = {}  # channel -> the alerts after this seq are ours to deliver
        with EventLog.create(self._log_path) as log:
            self._cursor = log.head()[0]  # alerts already in the log were someone else's to send
            self._head_ts = next((e.ts for e in log.events(after_seq=self._cursor - 1)), 0)

    def follow(self, run_id: str, *, catch_up: bool = False) -> None:
        """Start delivering the alerts ``run_id`` appends from now on (in the background).

        ``catch_up`` (the engine's sessions, which a crash or `tape down` may interrupt at any moment):
        also deliver the run's earlier alerts that its notify stream does not show as delivered or given
        up, continuing their attempt count, so a restarted session neither repeats nor loses one. Only
        alerts raised while a notifier with that channel followed the run are caught up on (the
        NotifierStarted events say since when): turning a channel on does not send the run's history.
        """
        self._run_id = run_id
        stream = f"run/{run_id}/notify"
        with EventLog.create(self._log_path) as log:
            if catch_up:
                self._fold_notify_stream(log.events(stream=stream))
            since = self._cursor
            names = [c.name for c in self._channels]
            for name in names:
                self._since[name] = min(self._since.get(name, since), since)
            started = NotifierStarted(
                ts=self._head_ts, channels=names, since_seq=since, wall_ns=self._wall_ns()
            )
            log.append_batch(
                [NewEvent(stream, started, f"notify:{run_id}:started:{','.join(names)}@{since}")]
            )
        if catch_up:
            self._cursor = 0
        self._thread = threading.Thread(target=self._loop, name="tape-notifier", daemon=True)
        self._thread.start()

    def _fold_notify_stream(self, events: Iterable[Event]) -> None:
        """What earlier notifiers of the run left: deliveries settled, attempts made, channels followed."""
        for event in events:
            if isinstance(event, NotifierStarted):
                for name in event.channels:
                    self._since[name] = min(self._since.get(name, event.since_seq), event.since_seq)
                continue
            key = (getattr(event, "alert_id", ""), getattr(event, "channel", ""))
            if isinstance(event, NotificationSent) or (isinstance(event, NotificationFailed) and event.final):
                self._settled.add(key)
            elif isinstance(event, NotificationFailed):
                self._attempts[key] = max(self._attempts.get(key, 0), event.attempt)

    def close(self, *, give_up: bool = True) -> dict[str, int]:
        """Pick up the last alerts, deliver what is pending (waiting at most the drain time), and
        record what could not be delivered as final failures; or, without ``give_up`` (an engine
        session, which resumes), leave it for the next notifier of the run to catch up on. Returns
        counts for the caller."""
        if self._thread is None:
            return {"sent": 0, "failed": 0}
        self._give_up_at_end = give_up
        self._stop.set()
        self._thread.join()
        return self._counts

    # ------------------------------------------------------------------ the thread

    def _loop(self) -> None:
        log = EventLog.create(self._log_path)
        try:
            deadline: float | None = None
            while True:
                self._poll(log)
                self._deliver_due(log)
                if self._stop.is_set():
                    if deadline is None:
                        self._poll(log)  # alerts appended just before the run ended
                        deadline = self._now() + self._settings.drain_s
                    if not self._jobs:
                        break
                    if self._now() >= deadline:
                        if self._give_up_at_end:
                            self._give_up(log)
                        break
                time.sleep(POLL_SECONDS)
        finally:
            log.close()

    def _poll(self, log: EventLog) -> None:
        floor = SEVERITY_RANK[self._settings.min_severity]
        for record in log.read(stream_prefix=f"run/{self._run_id}", kinds=("alert",), after_seq=self._cursor):
            self._cursor = record.seq
            alert: Alert = record.event  # type: ignore[assignment]
            if SEVERITY_RANK.get(alert.severity, 0) < floor:
                continue
            for channel in self._channels:
                key = (record.event_id, channel.name)
                if key not in self._settled and record.seq > self._since[channel.name]:
                    self._jobs.append(
                        _Job(self._now(), alert, record.event_id, channel, self._attempts.get(key, 0) + 1)
                    )

    def _deliver_due(self, log: EventLog) -> None:
        waiting: list[_Job] = []
        for job in sorted(self._jobs, key=lambda j: j.due):
            now = self._now()
            if job.due > now or not self._buckets[job.channel.name].take(now):
                waiting.append(job)
                continue
            try:
                job.channel.send(job.alert, self._run_id, job.alert_id)
            except DeliveryError as exc:
                final = job.attempt > self._settings.retries
                self._record(log, job, NotificationFailed, error=str(exc), attempt=job.attempt, final=final)
                if final:
                    self._counts["failed"] += 1
                else:
                    delay = self._settings.backoff_s * 2 ** (job.attempt - 1)
                    waiting.append(job._replace(due=self._now() + delay, attempt=job.attempt + 1))
            else:
                self._record(log, job, NotificationSent, attempts=job.attempt)
                self._counts["sent"] += 1
        self._jobs = waiting

    def _give_up(self, log: EventLog) -> None:
        for job in self._jobs:
            self._record(
                log,
                job,
                NotificationFailed,
                error="not delivered before the session ended (retries cut short)",
                attempt=job.attempt,
                final=True,
            )
            self._counts["failed"] += 1
        self._jobs = []

    def _record(self, log: EventLog, job: _Job, cls: type, **fields: Any) -> None:
        event = cls(
            ts=job.alert.ts,
            alert_id=job.alert_id,
            channel=job.channel.name,
            rule=job.alert.rule,
            target=job.channel.target,
            wall_ns=self._wall_ns(),
            **fields,
        )
        tag = "sent" if cls is NotificationSent else f"failed{job.attempt}"
        log.append_batch(
            [NewEvent(f"run/{self._run_id}/notify", event, f"notify:{job.alert_id}:{job.channel.name}:{tag}")]
        )


def start_notifier(log_path: Path, env: Mapping[str, str] | None = None) -> Notifier | None:
    """A notifier for the channels the environment configures, or None when none is (a bad
    configuration raises a ConfigError before any trading starts)."""
    channels, settings = channels_from_env(env)
    return Notifier(log_path, channels, settings) if channels else None
