"""Event versions: a body says its version in its tag, and :func:`decode` upgrades an older body
through the registered upcasts, one version at a time, without rewriting what is stored.

The versioned types here exist only in this file (``test_quote`` at version 3, a ``fill`` at version
2): no released type is past version 1 yet, and these show what adding a version takes.
"""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

import msgspec
import pytest

from tape.events import schema as s
from tape.store.log import EventLog

OLD_LOG = Path(__file__).parent / "data" / "log_2026-12-07.db.gz"


class QuoteV1(s.Event, tag="test_quote", kw_only=True):
    """Version 1 as it was written: the price in integer cents, the side apart from an unsigned qty."""

    symbol: str
    price_cents: int
    side: Literal["buy", "sell"]
    qty: float


class QuoteV2(s.Event, tag="test_quote@2", kw_only=True):
    """Version 2: the price in dollars."""

    class_version: ClassVar[int] = 2
    symbol: str
    price: float
    side: Literal["buy", "sell"]
    qty: float


class Quote(s.Event, tag="test_quote@3", kw_only=True):
    """Version 3 (current): the side folded into the sign of ``qty`` (negative sells)."""

    class_version: ClassVar[int] = 3
    symbol: str
    price: float
    qty: float


def quote_v1_to_v2(fields: list[Any]) -> list[Any]:
    """[ts, symbol, price_cents, side, qty] -> [ts, symbol, price (dollars), side, qty]."""
    ts, symbol, cents, side, qty = fields
    return [ts, symbol, cents / 100, side, qty]


def quote_v2_to_v3(fields: list[Any]) -> list[Any]:
    """[ts, symbol, price, side, qty] -> [ts, symbol, price, signed qty]."""
    ts, symbol, price, side, qty = fields
    return [ts, symbol, price, -qty if side == "sell" else qty]


@pytest.fixture
def quote_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """``test_quote`` known at version 3, with both upcasts registered (for this test only)."""
    monkeypatch.setattr(s, "UPCASTS", dict(s.UPCASTS))
    monkeypatch.setitem(s.EVENT_TYPES, "test_quote", Quote)
    s.upcast("test_quote", 1)(quote_v1_to_v2)
    s.upcast("test_quote", 2)(quote_v2_to_v3)


def test_every_event_type_is_tagged_with_its_kind_and_class_version() -> None:
    for kind, event_type in s.EVENT_TYPES.items():
        assert event_type.__struct_config__.tag == s.tag_for(kind, event_type.class_version)


def test_a_version_1_tag_is_the_bare_kind_and_later_versions_add_at_n() -> None:
    assert (s.split_tag("fill"), s.split_tag("fill@2")) == (("fill", 1), ("fill", 2))
    assert (s.tag_for("fill", 1), s.tag_for("fill", 3)) == ("fill", "fill@3")


def test_the_version_is_not_an_encoded_field() -> None:
    assert "class_version" not in s.Fill.__struct_fields__


def test_a_version_1_body_is_upcast_twice_to_the_current_version(quote_registered: None) -> None:
    body = s.encode(QuoteV1(ts=7, symbol="AAPL", price_cents=15150, side="sell", qty=10.0))
    assert s.decode(body) == Quote(ts=7, symbol="AAPL", price=151.5, qty=-10.0)


def test_a_version_2_body_is_upcast_once(quote_registered: None) -> None:
    body = s.encode(QuoteV2(ts=8, symbol="AAPL", price=151.5, side="buy", qty=4.0))
    assert msgspec.msgpack.decode(body)[0] == "test_quote@2"
    assert s.decode(body) == Quote(ts=8, symbol="AAPL", price=151.5, qty=4.0)


def test_a_missing_upcast_fails_naming_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(s.EVENT_TYPES, "test_quote", Quote)
    body = s.encode(QuoteV1(ts=7, symbol="AAPL", price_cents=1, side="buy", qty=1.0))
    with pytest.raises(
        msgspec.ValidationError, match="no upcast registered for test_quote from version 1 to 2"
    ):
        s.decode(body)


def test_a_body_newer_than_the_code_does_not_decode() -> None:
    fill = s.Fill(ts=1, client_order_id="c", exec_id="e", symbol="A", side="buy", qty=1, price=1)
    fields = msgspec.to_builtins(fill)[1:]
    with pytest.raises(msgspec.ValidationError):
        s.decode(msgspec.msgpack.encode(["fill@2", *fields]))


def test_a_body_of_an_unknown_kind_does_not_decode() -> None:
    with pytest.raises(msgspec.ValidationError):
        s.decode(msgspec.msgpack.encode(["no_such_kind", 1]))


def test_a_tag_that_disagrees_with_class_version_is_refused() -> None:
    class Mislabelled(s.Event, tag="mislabelled@2", kw_only=True):
        symbol: str

    with pytest.raises(TypeError, match="does not name class_version 1"):
        s._kind_checked(Mislabelled)


# --------------------------------------------------------------------------- the log from before


@pytest.fixture
def old_log(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    path.write_bytes(gzip.decompress(OLD_LOG.read_bytes()))
    return path


def test_every_stored_body_of_the_old_log_decodes_to_its_kind_and_encodes_to_its_bytes(old_log: Path) -> None:
    with EventLog.open(old_log, readonly=True) as log:
        rows = log.query("SELECT kind, body FROM events ORDER BY seq")
    kinds = set()
    for kind, body in rows:
        event = s.decode(body)
        assert s.kind_of(event) == kind
        assert s.encode(event) == bytes(body)  # every kind is still at version 1
        kinds.add(kind)
    assert {"run_started", "signal", "fill", "position_closed", "run_ended"} <= kinds


class FillV2(s.Event, tag="fill@2", kw_only=True):
    """A fill at version 2 (test only): ``notional``, required, follows the version 1 fields."""

    class_version: ClassVar[int] = 2
    client_order_id: str
    exec_id: str
    symbol: str
    side: s.Side
    qty: float
    price: float
    commission: float = 0.0
    slippage: float = 0.0
    reason: str = ""
    notional: float


def fill_v1_to_v2(fields: list[Any]) -> list[Any]:
    """Version 1's nine fields after ts, then the notional: qty (position 5) times price (position 6)."""
    padded = fields + [0.0, 0.0, ""][len(fields) - 7 :]  # trailing defaults of older, shorter bodies
    return [*padded, padded[5] * padded[6]]


def test_the_old_log_reads_through_the_upcast_when_fill_is_at_version_2(
    old_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code as it would be with ``fill`` at version 2: the same stored bytes, read by the log."""
    current = Union[tuple(FillV2 if t is s.Fill else t for t in s.AnyEvent.__args__)]  # noqa: UP007
    monkeypatch.setattr(s, "_decode_current", msgspec.msgpack.Decoder(current).decode)
    monkeypatch.setattr(s, "UPCASTS", dict(s.UPCASTS))
    monkeypatch.setitem(s.EVENT_TYPES, "fill", FillV2)
    s.upcast("fill", 1)(fill_v1_to_v2)
    copy = tmp_path / "copy.db"
    shutil.copy(old_log, copy)
    with EventLog.open(copy, readonly=True) as log:
        fills = [r.event for r in log.read(kinds=["fill"])]
        others = [r.event for r in log.read() if r.kind != "fill"]
    assert fills and all(isinstance(f, FillV2) for f in fills)
    assert all(f.notional == f.qty * f.price and f.notional > 0 for f in fills)
    assert all(type(e) is s.EVENT_TYPES[s.kind_of(e)] for e in others)


def test_the_writer_process_stores_a_versioned_body_under_its_bare_kind(tmp_path: Path) -> None:
    from tape.store import run_writer

    bodies = [s.encode(Quote(ts=1, symbol="AAPL", price=1.5, qty=2.0)), s.encode(_signal_at_version_2())]
    frame = msgspec.msgpack.encode([msgspec.Raw(b) for b in bodies])
    stdin = io.BytesIO(run_writer._FRAME.pack(len(frame)) + frame + run_writer._FRAME.pack(0))
    EventLog.create(tmp_path / "w.db").close()
    out = io.BytesIO()
    assert run_writer.serve(str(tmp_path / "w.db"), "r1", stdin, out) == 0, out.getvalue()
    with EventLog.open(tmp_path / "w.db", readonly=True) as log:
        rows = log.query("SELECT kind, stream, body FROM events ORDER BY seq")
    assert [(kind, stream) for kind, stream, _ in rows] == [
        ("test_quote", "run/r1/portfolio"),
        ("signal", "run/r1/AAPL/sma_cross"),
    ]
    assert [bytes(body) for _, _, body in rows] == bodies


class SignalV2(s.Event, tag="signal@2", kw_only=True):
    """A signal at version 2 (test only), with the leading fields the writer files it by."""

    class_version: ClassVar[int] = 2
    symbol: str
    strategy: str


def _signal_at_version_2() -> SignalV2:
    return SignalV2(ts=2, symbol="AAPL", strategy="sma_cross")
