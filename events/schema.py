"""The event vocabulary: every fact tape records, as msgspec Structs in one tagged union.

Bodies are msgpack arrays (``array_like``): half the bytes of field-name maps, which is what the
append rate of the log is bound by. A body is ``[tag, ts, field, ...]``, its fields by position.

Versions. Each event type declares ``class_version`` (a ClassVar, never an encoded field: encoding it
would add an element to every body). The version a body was written at lives in its tag: ``"fill"`` is
version 1, ``"fill@2"`` version 2. The tag is the first element of the body, so a stored body says what
it is without a column beside it, and the hash chain, which covers the body, covers its version too.
The stored ``kind`` (the log's column, :func:`kind_of`) is the tag without the ``@N``. Stored bodies are
never rewritten: :func:`decode` upgrades an older body on read, applying the registered upcast for
``(kind, 1)``, then ``(kind, 2)``, ... up to the type's current version.

Rules for changing an event type:
- a kind never changes once released, and fields are never added to the ``Event`` base;
- a NEW field with a default, appended at the END of its struct, needs no new version: older, shorter
  arrays decode with the default (``omit_defaults`` does not drop trailing defaults of array-like
  structs, so the bodies written from then on are one element longer, which is expected);
- a field whose MEANING, type or position changes, or a field removed, needs a new version: raise
  ``class_version`` by one, set the tag to ``"kind@N"``, and register an upcast with
  :func:`upcast` that turns the previous version's positional fields into the new ones.
``tests/test_schema.py`` pins the bytes of every event type so an accidental change fails loudly.

Every event carries ``ts``: the market time it refers to, in ns since the epoch (UTC). Nothing here reads a
clock; drivers pass time in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import msgspec

Side = Literal["buy", "sell"]
ExitReason = Literal["signal", "stop_loss", "take_profit", "end", "flatten", "daily_loss", "time_exit"]


class Event(
    msgspec.Struct, tag_field="kind", kw_only=True, frozen=True, omit_defaults=True, array_like=True, gc=False
):
    """Base of every event. ``ts`` is market time in ns since the epoch, UTC.

    ``gc=False``: events are immutable values that cannot form reference cycles, so the garbage
    collector need not track them (a backtest holds hundreds of thousands).
    ``class_version`` is the version this type writes (see the module docstring); not encoded.
    """

    ts: int
    class_version: ClassVar[int] = 1


# --------------------------------------------------------------------------- runs


class DataFingerprint(msgspec.Struct, frozen=True, kw_only=True, array_like=True, gc=False):
    """Which market data a run read, precisely enough to prove a re-run reads the same bytes."""

    symbol: str
    source: str  # "sample", "import", "alpaca", "live"
    timeframe: str  # "1Day", "1Hour", "5Min", "1Min"
    start_ts: int
    end_ts: int
    rows: int
    sha256: str  # over the (ts, open, high, low, close, volume) columns as read, after adjustment
    adjusted: bool = False


class BenchmarkLeg(msgspec.Struct, frozen=True, kw_only=True, array_like=True, gc=False):
    """First and last close of one symbol over a run: the buy-and-hold benchmark."""

    symbol: str
    first_close: float
    last_close: float


class RunStarted(Event, tag="run_started", kw_only=True):
    """A backtest, paper, live or replay session begins; holds everything needed to re-run it."""

    run_id: str
    mode: Literal["backtest", "paper", "live", "sim", "replay"]
    strategy: str
    params: dict[str, Any] = {}
    symbols: list[str] = []
    timeframe: str = "1Day"
    config: dict[str, Any] = {}  # risk, costs, cash, start/end, sizing
    data: list[DataFingerprint] = []
    code_version: str = ""
    parent_run: str = ""  # walk-forward fold or optimisation job this run belongs to
    label: str = ""


class RunEnded(Event, tag="run_ended", kw_only=True):
    """A run finished. ``bars`` counts bars processed; ``benchmark`` gives buy-and-hold legs."""

    run_id: str
    status: Literal["completed", "stopped", "failed"] = "completed"
    bars: int = 0
    benchmark: list[BenchmarkLeg] = []
    message: str = ""


class RunDerived(Event, tag="run_derived", kw_only=True):
    """A what-if run's link to the run it re-ran: the origin and what was changed (option names as
    ``tape whatif --set`` takes them, ``strategy``, ``param.<name>``), logged right after its RunStarted."""

    run_id: str
    derived_from: str
    changes: dict[str, Any] = {}
    inputs: str = "data"  # where the bars came from: "data" (the store, as fingerprinted) or "log"


class BarsRecorded(Event, tag="bars_recorded", kw_only=True):
    """Bars a session was given at its start, logged whole so a what-if needs no market-data store: a
    replay session's feed (``role="feed"``), a live session's warm-up window (``role="warm_up"``; its
    later bars are BarReceived events). Columns, oldest first, exactly as the core read them."""

    symbol: str
    timeframe: str
    role: Literal["feed", "warm_up"]
    times: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    source: str = ""
    adjusted: bool = False


class BarReceived(Event, tag="bar", kw_only=True):
    """A live or replayed bar, logged because a live bar cannot be fetched again identically."""

    symbol: str
    timeframe: str
    open: float
    high: float
    low: float
    close: float
    volume: float


# --------------------------------------------------------------------------- decisions


class Signal(Event, tag="signal", kw_only=True):
    """A strategy's view at a bar's close: buy or sell (hold is the absence of a signal)."""

    symbol: str
    strategy: str
    side: Side
    price: float  # the close the decision was made on
    reason: str = ""
    values: dict[str, float] = {}  # indicator values behind the decision


class OrderIntent(Event, tag="order_intent", kw_only=True):
    """The portfolio's sized proposal for an order, before (entries) or without (exits) the risk gate."""

    intent_id: str
    symbol: str
    strategy: str
    side: Side
    qty: float
    reason: Literal[
        "entry", "signal", "stop_loss", "take_profit", "end", "flatten", "daily_loss", "time_exit"
    ]
    ref_price: float  # price the size was computed on


class RiskAccepted(Event, tag="risk_accepted", kw_only=True):
    """The risk gate let an intent through; ``checks`` records the numbers it compared."""

    intent_id: str
    symbol: str
    qty: float
    checks: dict[str, float] = {}


class RiskRejected(Event, tag="risk_rejected", kw_only=True):
    """The risk gate refused an intent: which rule, why, and the numbers."""

    intent_id: str
    symbol: str
    rule: str  # "max_positions", "daily_loss", "zero_size", "cash", "correlation", "liquidity", ...
    message: str
    checks: dict[str, float] = {}


# --------------------------------------------------------------------------- orders and fills


class OrderSubmitted(Event, tag="order_submitted", kw_only=True):
    """An order left (or, simulated, would leave) the process. Durable before it is sent."""

    client_order_id: str
    intent_id: str
    symbol: str
    side: Side
    qty: float
    order_type: Literal["market", "limit", "stop", "stop_limit", "oco", "trailing_stop"] = "market"
    limit_price: float | None = None
    stop_price: float | None = None
    reason: str = ""  # entry, signal, protective (stop + target), end, flatten, ...
    strategy: str = ""


class OrderAcknowledged(Event, tag="order_acknowledged", kw_only=True):
    """The broker accepted an order and gave it an id."""

    client_order_id: str
    broker_order_id: str
    status: str = "accepted"


class OrderRejected(Event, tag="order_rejected", kw_only=True):
    """The broker (or the simulated broker) refused an order."""

    client_order_id: str
    symbol: str
    reason: str


class OrderCancelled(Event, tag="order_cancelled", kw_only=True):
    """An order was cancelled (by us, by the broker, or at the end of a run)."""

    client_order_id: str
    symbol: str
    reason: str = ""


class Fill(Event, tag="fill", kw_only=True):
    """An execution. ``exec_id`` is unique per execution; fills are deduplicated on it."""

    client_order_id: str
    exec_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    commission: float = 0.0
    slippage: float = 0.0  # dollars paid to slippage on this fill (price vs reference), >= 0 when adverse
    reason: str = ""  # exit reason for exits, "entry" for entries


class PositionOpened(Event, tag="position_opened", kw_only=True):
    """A position exists; stop and target are prices (0 when disabled)."""

    symbol: str
    strategy: str
    qty: float
    entry_price: float
    stop_price: float = 0.0
    take_profit_price: float = 0.0
    entry_commission: float = 0.0


class PositionClosed(Event, tag="position_closed", kw_only=True):
    """A round trip ended, or part of it: a ``qty`` smaller than the position's (beyond
    :func:`events.costs.qty_tolerance`) leaves the rest open, and the part's P&L is against its share of
    the entry cost and commission (events/portfolio_state.py, ``closing_part``). A fold that needs what is
    left subtracts ``qty`` from what it holds. P&L is in dollars; ``net_pnl = gross_pnl - commission``."""

    symbol: str
    strategy: str
    qty: float
    entry_ts: int
    entry_price: float
    exit_price: float
    exit_reason: ExitReason
    gross_pnl: float
    commission: float
    net_pnl: float
    slippage: float = 0.0


class StopMoved(Event, tag="stop_moved", kw_only=True):
    """A trailing stop's level moved after a completed bar (events/orders.py, rule 6): the protective
    order ``client_order_id`` now stops at ``stop_price``; ``extreme`` is the best close since entry."""

    client_order_id: str
    symbol: str
    stop_price: float
    extreme: float


class BorrowFeeCharged(Event, tag="borrow_fee", kw_only=True):
    """One day's borrow fee of an open short, paid from cash: ``fee`` = ``qty`` x ``price`` (the
    session's close) x ``rate_pct`` / 100 / 360, in dollars rounded to the cent."""

    symbol: str
    qty: float  # shares short (positive)
    price: float
    rate_pct: float  # annual
    fee: float


class EquityMarked(Event, tag="equity_marked", kw_only=True):
    """Mark-to-market at a period close (each bar for daily data, each session for intraday).

    ``drawdown``/``drawdown_pct`` are the deepest drawdown reached within the period, measured from the
    running peak; ``bars``/``bars_in_market`` count bars in the period and those holding a position.
    """

    equity: float
    cash: float
    peak: float
    drawdown: float = 0.0
    drawdown_pct: float = 0.0
    bars: int = 0
    bars_in_market: int = 0


# --------------------------------------------------------------------------- actors and operations


class ActorStarted(Event, tag="actor_started", kw_only=True):
    """An actor came up and rebuilt its state from ``events_folded`` events."""

    actor: str
    symbol: str = ""
    strategy: str = ""
    events_folded: int = 0
    detail: str = ""
    pid: int = 0  # the OS process running the actor, so an operator can find it (ps, kill)


class ActorStopped(Event, tag="actor_stopped", kw_only=True):
    """An actor went down (``reason``: stop, down, crash, ...)."""

    actor: str
    symbol: str = ""
    strategy: str = ""
    reason: str = ""


class Reconciled(Event, tag="reconciled", kw_only=True):
    """What the portfolio found when it compared its folded state with the broker's books."""

    broker_positions: dict[str, float] = {}
    local_positions: dict[str, float] = {}
    open_orders: list[str] = []
    fills_applied: int = 0
    differences: list[str] = []


class CycleCompleted(Event, tag="cycle_completed", kw_only=True):
    """One scheduler cycle: when it was due, how long it took (wall ms), what ran or why it skipped."""

    cycle: int
    duration_ms: float = 0.0
    symbols: list[str] = []
    skipped: str = ""  # e.g. "feed error: ..." on every cycle whose bar request got no answer
    # every order submission of the cycle that got no answer (the ``broker`` alert is raised once per
    # outage, so these are the record of the rest)
    broker_errors: list[str] = []


class Alert(Event, tag="alert", kw_only=True):
    """Something a human should know: drawdown, daily loss halt, degradation, stalled feed, dead actor."""

    rule: str
    severity: Literal["info", "warning", "critical"] = "warning"
    message: str = ""
    value: float = 0.0
    threshold: float = 0.0
    symbol: str = ""
    day: str = ""  # session date the alert belongs to (alerts fire once per rule and day at most)


class NotificationSent(Event, tag="notification_sent", kw_only=True):
    """An alert reached a human's channel (email, sms, webhook). ``ts`` is the alert's market time;
    ``wall_ns`` when it was delivered (notifications are operational facts, timed by the driver)."""

    alert_id: str  # event id of the alert
    channel: str
    rule: str = ""
    attempts: int = 1
    target: str = ""  # where it went, without secrets (host of a webhook, masked phone number, ...)
    wall_ns: int = 0


class NotificationFailed(Event, tag="notification_failed", kw_only=True):
    """One failed delivery attempt of an alert; ``final`` when no retry follows (the alert is lost to
    that channel). ``error`` never holds a secret."""

    alert_id: str
    channel: str
    error: str
    rule: str = ""
    attempt: int = 1
    final: bool = False
    target: str = ""
    wall_ns: int = 0


class NotifierStarted(Event, tag="notifier_started", kw_only=True):
    """A notifier began delivering a run's alerts to ``channels``: the alerts after ``since_seq`` are
    its to deliver. A later notifier of the run (a restarted engine session) catches up on those, and
    never sends late an alert raised while no notifier with that channel followed the run. ``ts`` is
    the market time of the newest event the log held then; ``wall_ns`` when it started."""

    channels: list[str]
    since_seq: int
    wall_ns: int = 0


class OperatorNote(Event, tag="operator_note", kw_only=True):
    """Free text from a human, for the audit trail."""

    text: str
    author: str = ""


class BacktestSummary(Event, tag="backtest_summary", kw_only=True):
    """One backtest inside a sweep, walk-forward or validation job: enough to re-run it in full."""

    job_id: str
    strategy: str
    params: dict[str, Any] = {}
    symbols: list[str] = []
    start_ts: int = 0
    end_ts: int = 0
    config: dict[str, Any] = {}
    data: list[DataFingerprint] = []
    metrics: dict[str, float] = {}
    phase: str = ""  # "grid", "train", "test", "validate"
    fold: int = -1


class RegimeChanged(Event, tag="regime_changed", kw_only=True):
    """A symbol's market regime changed (trending / ranging / volatile), with the numbers behind it."""

    symbol: str
    regime: str
    previous: str = ""
    adx: float = 0.0
    atr_pct: float = 0.0


class SessionSpawned(Event, tag="session_spawned", kw_only=True):
    """The engine took on a (symbol, strategy) session (`tape spawn`); filed in stream ``engine``.
    A restarted engine resumes every session spawned and not stopped since."""

    run_id: str
    symbol: str
    strategy: str
    interval: str = "5m"
    days_back: int = 5
    config: dict[str, Any] = {}  # the BacktestConfig the run trades with
    trade_updates: bool = True  # the session listens to Alpaca's trade-update stream (`--no-trade-updates`)
    monitor: dict[str, Any] | None = None  # the MonitorConfig it alerts with (None: no monitor)


class SessionStopped(Event, tag="session_stopped", kw_only=True):
    """The engine let a session go (`tape stop`); its run stays in the log and can be spawned again."""

    run_id: str
    symbol: str
    strategy: str
    reason: str = ""


class EngineConfigured(Event, tag="engine_configured", kw_only=True):
    """`tape up` started the engine with these options; filed in stream ``engine``. A later `tape up`
    without ``--feed`` or ``--clock`` starts with the newest one's."""

    broker: str = "alpaca"
    feed: str = "alpaca"
    clock: str = "wall"


class Rebalanced(Event, tag="rebalanced", kw_only=True):
    """A portfolio strategy's rebalance, decided at a bar's close: one decision for the whole universe.

    ``targets`` are the weights aimed at after the limits (max weight), ``current`` the weights held
    before, both fractions of ``equity``; ``orders`` the signed quantities sent (a sell is negative),
    filling at each symbol's next open; ``values`` the recorded numbers behind each symbol's weight
    (e.g. score and rank). ``n`` counts the run's rebalances from 1; ``trigger`` says why
    (``monthly``, ``drift``, ...)."""

    run_id: str
    n: int
    strategy: str
    trigger: str
    equity: float
    cash: float
    targets: dict[str, float] = {}
    current: dict[str, float] = {}
    orders: dict[str, float] = {}
    values: dict[str, dict[str, float]] = {}


AnyEvent = (
    RunStarted
    | RunEnded
    | BarReceived
    | Signal
    | OrderIntent
    | RiskAccepted
    | RiskRejected
    | OrderSubmitted
    | OrderAcknowledged
    | OrderRejected
    | OrderCancelled
    | Fill
    | PositionOpened
    | PositionClosed
    | EquityMarked
    | ActorStarted
    | ActorStopped
    | Reconciled
    | CycleCompleted
    | Alert
    | OperatorNote
    | BacktestSummary
    | RegimeChanged
    | BorrowFeeCharged
    | StopMoved
    | NotificationSent
    | NotificationFailed
    | NotifierStarted
    | SessionSpawned
    | SessionStopped
    | EngineConfigured
    | RunDerived
    | BarsRecorded
    | Rebalanced
)

VERSION_MARK = "@"
"""Separates a kind from its version in a tag: ``fill@2``."""


def split_tag(tag: str) -> tuple[str, int]:
    """The kind and the version a body's tag names (``"fill"`` -> ``("fill", 1)``); ValueError when the
    version is not a number."""
    kind, mark, version = tag.partition(VERSION_MARK)
    return kind, int(version) if mark else 1


def tag_for(kind: str, version: int) -> str:
    """The tag a body of ``kind`` at ``version`` carries (version 1 is the bare kind)."""
    return kind if version == 1 else f"{kind}{VERSION_MARK}{version}"


def _kind_checked(event_type: type[Event]) -> str:
    """The stored kind of a type, after checking its tag names its ``class_version``."""
    tag: str = event_type.__struct_config__.tag  # type: ignore[assignment]
    kind, version = split_tag(tag)
    if version != event_type.class_version:
        raise TypeError(
            f"{event_type.__name__}: tag {tag!r} does not name class_version {event_type.class_version}"
        )
    return kind


EVENT_TYPES: dict[str, type[Event]] = {
    _kind_checked(t): t
    for t in AnyEvent.__args__  # type: ignore[attr-defined]
}
KIND_OF: dict[type[Event], str] = {t: k for k, t in EVENT_TYPES.items()}

Upcast = Callable[[list[Any]], list[Any]]
"""Turns one version's positional fields (``[ts, field, ...]``, the tag left out) into the next's."""

UPCASTS: dict[tuple[str, int], Upcast] = {}
"""The explicit upgrades, by (kind, version they read); each yields version + 1."""


def upcast(kind: str, from_version: int) -> Callable[[Upcast], Upcast]:
    """Register the decorated function as the upgrade of ``kind`` bodies from ``from_version`` to the
    next version. Its docstring should give both layouts: the old one exists nowhere else."""

    def register(function: Upcast) -> Upcast:
        if (kind, from_version) in UPCASTS:
            raise ValueError(f"an upcast of {kind} from version {from_version} is already registered")
        UPCASTS[(kind, from_version)] = function
        return function

    return register


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyEvent)
_raw_decoder = msgspec.msgpack.Decoder(list[Any])
_json_encoder = msgspec.json.Encoder()

encode = _encoder.encode
"""Encode an event to its stable msgpack body."""

_decode_current = _decoder.decode


def decode(body: bytes) -> Event:
    """Decode a msgpack body to its event struct, upgrading a body of an older version through the
    registered upcasts. Raises ``msgspec.ValidationError`` (a ``DecodeError``) for a body that is
    neither a current event nor an older version with a registered path to the current one."""
    try:
        return _decode_current(body)  # type: ignore[no-any-return]
    except msgspec.ValidationError as current_error:
        upgraded = _upcast(body)
        if upgraded is None:
            raise current_error from None
        return upgraded


def _upcast(body: bytes) -> Event | None:
    """The event an older body upgrades to, or None when it is not an older version of a known kind."""
    try:
        raw = _raw_decoder.decode(body)
    except msgspec.DecodeError:
        return None
    if not raw or not isinstance(raw[0], str):
        return None
    try:
        kind, version = split_tag(raw[0])
    except ValueError:
        return None
    event_type = EVENT_TYPES.get(kind)
    if event_type is None or version >= event_type.class_version:
        return None
    fields = raw[1:]
    for step in range(version, event_type.class_version):
        function = UPCASTS.get((kind, step))
        if function is None:
            raise msgspec.ValidationError(
                f"no upcast registered for {kind} from version {step} to {step + 1}"
            )
        fields = function(fields)
    return msgspec.convert([tag_for(kind, event_type.class_version), *fields], event_type)


def kind_of(event: Event) -> str:
    """The kind an event is stored under (``fill``, ``signal``, ...): its tag without a version."""
    return KIND_OF[type(event)]


def to_builtins(event: Event) -> dict[str, Any]:
    """The event as a plain dict, tag included (``kind``; ``fill@2`` from version 2 on), for JSON output."""
    return msgspec.to_builtins(event)  # type: ignore[no-any-return]


def to_json(event: Event) -> bytes:
    """The event as JSON bytes, tag included."""
    return _json_encoder.encode(event)
