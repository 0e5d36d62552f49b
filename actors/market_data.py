"""The engine's market data: one actor holds Alpaca's one market-data connection for every session.

Alpaca allows one market-data WebSocket connection per account, so an engine started with
`tape up --feed alpaca-stream` runs a single :class:`MarketDataActor` holding a
:class:`~actors.alpaca.stream.MinuteStream` (the stocks stream and the crypto stream, each opened when a
session first needs it) for the union of its sessions' symbols, and each session's PortfolioActor reads
its bars through a :class:`SharedStreamFeed`:

- once per cycle (never per bar) the session asks the actor for its window, at its own timeframe; the
  actor aggregates the minutes it holds for the symbols it can vouch for (see actors/alpaca/stream.py:
  subscribed without a drop since before the window began, last minute arrived) and names the others,
  which the session reads over REST itself. A symbol is subscribed the first time a session asks for it
  (its warm-up, at spawn), on the running connection, and unsubscribed when `tape stop` stops the last
  running session that reads it;
- when the actor cannot be reached (killed, restarting, hung) the session reads the whole window over
  REST and trades on; the session logs one ``market_data`` alert for the outage (events/monitor.py's
  outage rule: raised once, cleared when a call answers again). Ray restarts the actor (``max_restarts=-1``,
  as the engine itself is restarted); the new one starts with no connection, the sessions' next calls
  subscribe their symbols again, and the stream counts again from the window after that.

Either way a window's bars are the same (the stream's minutes aggregate exactly to Alpaca's REST bars),
so the decisions do not depend on which source served a window. The actor logs its starts (a restart is
``restarted after its process died``) and its stop in the ``engine`` stream, with its pid.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tape.actors.alpaca.feed import AlpacaBarFeed, LiveBar
from tape.actors.alpaca.stream import MinuteStream, StreamAnswer
from tape.actors.engine_spec import ENGINE_STREAM, EngineOptions, engine_clock
from tape.events.schema import ActorStarted, ActorStopped, Event
from tape.events.timeframes import timeframe_ns
from tape.store.credentials import AlpacaCredentials, load_alpaca_credentials
from tape.store.log import EventLog

MARKET_DATA_NAME = "tape-market-data"
MARKET_DATA_ACTOR = "market_data"  # ActorStarted.actor in the engine stream
STREAMING_FEED = "alpaca-stream"
FEEDS = ("alpaca", STREAMING_FEED)  # what `tape up --feed` takes
SETTLE_SECONDS = 5.0  # how long a window waits for its last minute (see MinuteStream)
# A window call waits up to SETTLE_SECONDS inside the actor; longer than this, the actor is taken as
# unreachable for the cycle (a call queued while Ray restarts it also ends here).
CALL_TIMEOUT_S = SETTLE_SECONDS + 10.0


class MarketDataActor:
    """The engine's one market-data connection (a threaded Ray actor: sessions ask concurrently)."""

    def __init__(self, options: EngineOptions, settle_seconds: float = SETTLE_SECONDS) -> None:
        import ray

        self._clock = engine_clock(options)  # the engine's clock: its events are stamped in its time
        credentials = load_alpaca_credentials(dotenv_path=Path(options.dotenv) if options.dotenv else None)
        self._stream = MinuteStream(credentials, settle_seconds=settle_seconds)
        self._log = EventLog.create(options.log_path, durable=True)
        reconstructed = ray.get_runtime_context().was_current_actor_reconstructed
        self.restarts = self._restarts_since_up() + int(reconstructed)
        self._record(
            ActorStarted(
                ts=self._clock.now_ns(),
                actor=MARKET_DATA_ACTOR,
                detail="restarted after its process died" if reconstructed else "up",
                pid=os.getpid(),
            )
        )

    def window(self, symbols: list[str], bar_ns: int, after_ns: int, now_ns: int) -> StreamAnswer:
        """One session's cycle: the bars of the symbols the stream holds whole, and those it does not."""
        return self._stream.window(symbols, bar_ns, after_ns, now_ns)

    def unsubscribe(self, symbols: list[str]) -> None:
        """Stop streaming ``symbols`` (no running session reads them any more: `tape stop`)."""
        self._stream.unsubscribe(symbols)

    def status(self) -> dict[str, Any]:
        """For `tape status`: the connection, its symbols, windows served by each source, drops."""
        return {
            "actor": MARKET_DATA_ACTOR,
            "alive": True,
            "pid": os.getpid(),
            "restarts": self.restarts,
            "connected": self._stream.connected,
            "symbols": self._stream.symbols,
            "windows": dict(self._stream.windows),
            "drops": self._stream.drops,
        }

    def close(self, reason: str = "tape down") -> None:
        """Close the streams (Alpaca's connection is free again) and log the stop."""
        self._stream.close()
        self._record(ActorStopped(ts=self._clock.now_ns(), actor=MARKET_DATA_ACTOR, reason=reason))
        self._log.close()

    # ------------------------------------------------------------------ the engine stream

    def _record(self, event: Event) -> None:
        # No expected version: what this actor logs decides nothing the engine stream folds.
        self._log.append(ENGINE_STREAM, [event], durable=True)

    def _restarts_since_up(self) -> int:
        count = 0
        for event in self._log.events(stream=ENGINE_STREAM, kinds=["actor_started"]):
            if isinstance(event, ActorStarted) and event.actor == MARKET_DATA_ACTOR:
                count = 0 if event.detail == "up" else count + 1
        return count


class SharedStreamFeed:
    """A session's feed in a streaming engine (the Feed protocol): one call to the engine's
    :class:`MarketDataActor` per cycle, REST for whatever it cannot vouch for or when it is down."""

    def __init__(
        self,
        credentials: AlpacaCredentials,
        timeframe: str,
        *,
        namespace: str,
        rest: AlpacaBarFeed | None = None,
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        self.timeframe = timeframe
        self.rest = rest or AlpacaBarFeed(credentials, timeframe)
        self._bar_ns = timeframe_ns(timeframe)
        self._namespace = namespace
        self._timeout = timeout_s
        self._handle: Any = None
        self._failure: str | None = None  # why a call failed since the session last asked ...
        self._answered = False  # ... and whether one answered
        # Windows this session read from the stream, over REST (the stream could not vouch for them),
        # and over REST because the actor could not be reached.
        self.windows = {"stream": 0, "rest": 0, "actor_down": 0}

    def completed(self, symbols: list[str], after_ns: int, now_ns: int) -> list[LiveBar]:
        """Bars that started after ``after_ns`` and closed by ``now_ns``, in (time, symbol) order."""
        if now_ns <= after_ns:
            return []
        try:
            answer = self._ask(symbols, after_ns, now_ns)
        except Exception as exc:  # any failure of the actor: this window is read over REST
            self._handle = None
            self._failure = (
                f"the market-data actor could not be reached ({_why(exc)}); bars are read over REST "
                "until it is back"
            )
            self.windows["actor_down"] += 1
            return self.rest.completed(symbols, after_ns, now_ns)
        self._answered = True
        bars = list(answer.bars)
        if answer.streamed:
            self.windows["stream"] += 1
        if answer.rest:
            self.windows["rest"] += 1
            bars += self.rest.completed(list(answer.rest), after_ns, now_ns)
        order = {s: k for k, s in enumerate(symbols)}
        return sorted(bars, key=lambda b: (b.ts, order[b.symbol]))

    def get_latest_price(self, symbol: str) -> float:
        """The price of ``symbol``'s latest trade, over REST."""
        return self.rest.get_latest_price(symbol)

    def take_market_data_outcome(self) -> tuple[str | None, bool]:
        """(why a call to the actor failed, whether one answered) since the last time the session
        asked: the session turns it into the ``market_data`` outage alert or its clearance."""
        outcome = (self._failure, self._answered)
        self._failure, self._answered = None, False
        return outcome

    def close(self) -> None:
        """Nothing to close: the connection is the engine's."""

    def _ask(self, symbols: list[str], after_ns: int, now_ns: int) -> StreamAnswer:
        import ray

        if self._handle is None:
            self._handle = ray.get_actor(MARKET_DATA_NAME, namespace=self._namespace)
        ref = self._handle.window.remote(list(symbols), self._bar_ns, after_ns, now_ns)
        return StreamAnswer(*ray.get(ref, timeout=self._timeout))


def session_feed(options: EngineOptions, credentials: AlpacaCredentials, timeframe: str) -> Any:
    """The feed of one engine session: REST bars each cycle, or the engine's shared stream."""
    if options.feed == STREAMING_FEED:
        return SharedStreamFeed(credentials, timeframe, namespace=options.namespace)
    return AlpacaBarFeed(credentials, timeframe)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
