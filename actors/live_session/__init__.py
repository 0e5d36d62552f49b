"""The live session (see session.py): scheduled cycles of completed bars, real orders at a broker."""

from tape.actors.live_session.contracts import (
    NOT_SENT,
    Broker,
    CycleReport,
    Decision,
    Feed,
    LocalStrategies,
    Restarted,
    Strategies,
    StreamHealthFeed,
    live_run_id,
)
from tape.actors.live_session.cycles import run_schedule
from tape.actors.live_session.session import LiveSession

__all__ = [
    "NOT_SENT",
    "Broker",
    "CycleReport",
    "Decision",
    "Feed",
    "LiveSession",
    "LocalStrategies",
    "Restarted",
    "Strategies",
    "StreamHealthFeed",
    "live_run_id",
    "run_schedule",
]
