"""Alert notifications: each alert sent to every channel (actors/notify_channels.py), never blocking trading.

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

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from tape.actors.notify_channels import (
    DEFAULT_SETTINGS,
    Channel,
    DeliveryError,
    NotifySettings,
    channels_from_env,
)
from tape.events.notifications import SEVERITY_RANK
from tape.events.schema import Alert, Event, NotificationFailed, NotificationSent, NotifierStarted
from tape.store.log import EventLog, NewEvent

POLL_SECONDS = 0.1


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
