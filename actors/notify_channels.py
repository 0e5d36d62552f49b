"""Where alerts go: email (SMTP), SMS (a Twilio-style REST API) and a JSON webhook, configured from the
environment (:func:`channels_from_env`). Secrets (passwords, tokens, webhook paths) never appear in
events, errors or output: a channel's failure is scrubbed before it is raised."""

from __future__ import annotations

import base64
import json
import os
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import Any, NamedTuple, Protocol

from tape.events.errors import ConfigError
from tape.events.notifications import SEVERITY_RANK, body_of, payload_of, subject_of
from tape.events.schema import Alert


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
