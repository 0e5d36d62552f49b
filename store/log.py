"""The immutable event log: one SQLite file, one append-only table, a sha256 hash chain.

Writes go through apsw (it bundles a current SQLite and appends ~1.6x faster than the stdlib driver with
this table's two UNIQUE indexes). Every append runs in one ``BEGIN IMMEDIATE`` transaction, so a batch is
all or nothing, concurrent writers serialise on SQLite's write lock, and the gapless ``seq`` and the chain
are computed under that lock.
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import operator
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, NamedTuple

import apsw
import msgspec

from tape.events.errors import TapeError
from tape.events.schema import KIND_OF, Event, decode, encode
from tape.store import views
from tape.store.checkpointer import WalCheckpointer

APPLICATION_ID = 0x74617065  # "tape": marks the file as ours, so a foreign SQLite file is refused
# user_version: 1 = chain v1 (the event id is not hashed), 2 = chain v2 (it is). A log keeps the chain
# format it was created with, so a log written before v2 verifies with the head it always had.
SCHEMA_VERSION = 2
CHAIN_V1, CHAIN_V2 = 1, 2
GENESIS = bytes(32)
# How long a writer waits for another one (SQLite's busy handler backs off between tries), then says
# who holds the log. TAPE_BUSY_TIMEOUT (seconds) changes it.
BUSY_TIMEOUT_MS = int(float(os.environ.get("TAPE_BUSY_TIMEOUT", "30")) * 1000)

SCHEMA = """
CREATE TABLE events(
    seq INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    body BLOB NOT NULL,
    hash BLOB NOT NULL,
    UNIQUE(stream, version)
) STRICT;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'tape log is append-only: UPDATE rejected'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'tape log is append-only: DELETE rejected'); END;
"""


class LogError(TapeError):
    """The log file is missing, not a tape log, or damaged."""


class LogBusy(LogError):
    """Another process held the log's write lock for longer than a writer waits."""

    exit_code = 1


class LogCorrupt(LogError):
    """The file's pages are damaged (SQLite's integrity check fails): nothing is appended to it."""

    exit_code = 1


class ConcurrencyConflict(TapeError):
    """A writer's expected stream version is stale: someone else appended first. Re-read and retry."""

    exit_code = 1

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream!r} is at version {actual}, writer expected {expected}")
        self.stream, self.expected, self.actual = stream, expected, actual


class IdempotencyError(TapeError):
    """A retried append is not the same append: some of its event ids exist, others do not."""


class Recorded(msgspec.Struct, frozen=True, gc=False):
    """An event as stored: its place in the log and the decoded event."""

    seq: int
    stream: str
    version: int
    event_id: str
    kind: str
    ts: int
    event: Event


class NewEvent(NamedTuple):
    """One event to append: where it goes and, optionally, its idempotency key."""

    stream: str
    event: Event
    event_id: str | None = None


class AppendResult(msgspec.Struct, frozen=True):
    """Outcome of one append call. ``duplicate`` means every event id was already stored: a no-op."""

    status: Literal["appended", "duplicate"]
    first_seq: int
    last_seq: int
    count: int
    versions: dict[str, int]  # stream -> version after the append

    @property
    def duplicate(self) -> bool:
        return self.status == "duplicate"


class VerifyReport(msgspec.Struct, frozen=True):
    """What ``verify`` found: intact (``ok``) or the first seq that breaks the chain and why."""

    ok: bool
    count: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str = ""
    damaged: bool = False  # the file's pages fail SQLite's integrity check (the chain was not read)


_Q = struct.Struct(">q").pack
_L = struct.Struct(">I").pack
_sha256 = hashlib.sha256
_stream_of = operator.itemgetter(0)  # NewEvent.stream


def _framed(text: str) -> bytes:
    raw = text.encode()
    return _L(len(raw)) + raw


class _Header(NamedTuple):
    """What the hash needs between prev and body, packed by one struct for a (stream, kind) pair."""

    pack: Any  # chain v1: prev ‖ seq ‖ stream ‖ version ‖ kind ‖ ts in one pack call
    pre: Any  # chain v2: prev ‖ seq ‖ stream ‖ version (the event id follows) ...
    post: Any  # ... then kind ‖ ts
    stream_len: int
    stream: bytes
    kind_len: int
    kind_bytes: bytes
    kind: str

    @classmethod
    def of(cls, stream: str, kind: str) -> _Header:
        fs, fk = stream.encode(), kind.encode()
        packer = struct.Struct(f">32sqI{len(fs)}sqI{len(fk)}sq").pack
        pre = struct.Struct(f">32sqI{len(fs)}sq").pack
        post = struct.Struct(f">I{len(fk)}sq").pack
        return cls(packer, pre, post, len(fs), fs, len(fk), fk, kind)


def chain_hash(
    prev: bytes,
    seq: int,
    stream: str,
    version: int,
    kind: str,
    ts: int,
    body: bytes,
    event_id: str | None = None,
) -> bytes:
    """Chain v2: sha256(prev ‖ seq ‖ stream ‖ version ‖ event_id ‖ kind ‖ ts ‖ body); chain v1 (no
    ``event_id``) leaves the event id out. Strings are length-prefixed."""
    framed_id = _framed(event_id) if event_id is not None else b""
    return _sha256(
        b"".join((prev, _Q(seq), _framed(stream), _Q(version), framed_id, _framed(kind), _Q(ts), body))
    ).digest()


def default_event_id(stream: str, version: int, kind: str, ts: int, body: bytes) -> str:
    """Content id used when the caller gives none: the same append retried gets the same id."""
    return _sha256(b"".join((_framed(stream), _Q(version), _framed(kind), _Q(ts), body))).hexdigest()[:32]


class _Chain:
    """The hash chain's running state inside one write transaction: seq, previous hash, stream versions.

    ``rows`` turns events into table rows, chaining each to the one before; it can be called several
    times in one transaction (a run streamed to the log in chunks).
    """

    __slots__ = ("headers", "lookup", "prev", "seq", "v2", "versions")

    def __init__(
        self,
        head_seq: int,
        prev: bytes,
        versions: dict[str, int],
        lookup: Callable[[str], int] | None = None,
        chain_format: int = CHAIN_V2,
    ) -> None:
        self.seq, self.prev = head_seq, prev
        self.v2 = chain_format >= CHAIN_V2
        self.versions = dict(versions)
        self.lookup = lookup  # current version of a stream not seen yet in this transaction
        self.headers: dict[tuple[str, str], _Header] = {}

    def rows(
        self, items: Iterable[NewEvent], id_shift: Mapping[str, int] | None = None
    ) -> list[tuple[Any, ...]]:
        """Table rows for events, each chained to the one before."""
        items = list(items)
        if not items:
            return []
        # Column by column (comprehensions run at C speed) and zipped, rather than a generator
        # building a tuple per event: measured ~20 % of a batched append.
        streams, events, ids = zip(*items, strict=True)
        kinds = [KIND_OF[e.__class__] for e in events]
        encoded = zip(streams, kinds, [e.ts for e in events], [encode(e) for e in events], ids, strict=True)
        return self.rows_encoded(encoded, id_shift)

    def rows_encoded(
        self,
        items: Iterable[tuple[str, str, int, bytes, str | None]],
        id_shift: Mapping[str, int] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Table rows for already encoded events: (stream, kind, ts, body, event_id or None)."""
        rows: list[tuple[Any, ...]] = []
        add = rows.append
        seq, prev, next_version, headers = self.seq, self.prev, self.versions, self.headers
        sha, v2, framed = _sha256, self.v2, _framed
        last_stream, last_kind = "", ""
        pack, pre, post, stream_len, stream_bytes, kind_len, kind_bytes, kind_str = _Header.of("", "")
        for stream, kind, ts, body, event_id in items:
            seq += 1
            version = next_version.get(stream)
            if version is None:
                if self.lookup is None:
                    raise KeyError(stream)
                version = self.lookup(stream)
            version += 1
            next_version[stream] = version
            if kind is not last_kind or stream != last_stream:  # batches are runs of one stream and kind
                header = headers.get((stream, kind))
                if header is None:
                    header = headers[(stream, kind)] = _Header.of(stream, kind)
                # Held in locals: this loop runs once per event, attribute lookups add up.
                pack, pre, post, stream_len, stream_bytes, kind_len, kind_bytes, kind_str = header
                last_stream, last_kind = stream, kind
            if event_id is None:
                shift = id_shift[stream] if id_shift else 0
                event_id = default_event_id(stream, version + shift, kind, ts, body)
            if v2:
                prev = sha(
                    pre(prev, seq, stream_len, stream_bytes, version)
                    + framed(event_id)
                    + post(kind_len, kind_bytes, ts)
                    + body
                ).digest()
            else:
                prev = sha(
                    pack(prev, seq, stream_len, stream_bytes, version, kind_len, kind_bytes, ts) + body
                ).digest()
            add((seq, stream, version, event_id, kind_str, ts, body, prev))
        self.seq, self.prev = seq, prev
        return rows


class EventLog:
    """An open tape log. Use :meth:`open` (existing file) or :meth:`create` (new or existing)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        conn: apsw.Connection,
        *,
        durable: bool,
        readonly: bool = False,
        checkpointer: WalCheckpointer | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self._conn = conn
        self._durable = durable
        self._readonly = readonly
        self._deferred = False  # a long run's writer leaves follow-up work to the next writer
        self._checkpointer = checkpointer
        self._closed = False

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, durable: bool = False, readonly: bool = False) -> EventLog:
        """Open an existing tape log; refuse a missing file, a non-SQLite file or another app's database."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise LogError(f"no tape log at {path} (run a backtest or `tape log note` to create one)")
        if os.path.isdir(path):
            raise LogError(f"{path} is a directory, not a tape log")
        _check_is_tape_log(path)
        log = cls._connect(path, durable=durable, readonly=readonly)
        if not readonly:
            log.sync_views(wait=False)  # a log from before the views gets them here (migration)
        return log

    @classmethod
    def create(cls, path: str | os.PathLike[str], *, durable: bool = False) -> EventLog:
        """Open the log at ``path``, creating it (and its schema) when the file does not exist yet."""
        path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise LogError(f"cannot create a tape log at {path}: directory {parent} does not exist")
        # Processes starting at once on a fresh log (four backtests, say) take turns here: one creates
        # it, whole, and the others open what it made instead of meeting a half-made file.
        with _creating_in(parent, path):
            if os.path.exists(path) and os.path.getsize(path) > 0:
                return cls.open(path, durable=durable)
            log = cls._connect(path, durable=durable, readonly=False, new=True)
            log._init_schema()
            log.sync_views(wait=False)
            return log

    @classmethod
    def _connect(cls, path: str, *, durable: bool, readonly: bool, new: bool = False) -> EventLog:
        flags = (
            apsw.SQLITE_OPEN_READONLY if readonly else apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
        )
        try:
            conn = apsw.Connection(path, flags=flags)
            conn.setbusytimeout(BUSY_TIMEOUT_MS)
            if new:
                # 64 KiB pages append ~1.7x faster than 4 KiB with this table's two indexes (measured:
                # fewer page splits, shallower trees); the size must be set before the switch to WAL.
                conn.execute("PRAGMA page_size=65536")
            checkpointer = None
            if not readonly:
                conn.execute("PRAGMA journal_mode=WAL")
                if durable:
                    # fsync-bound commits: a checkpoint's own fsyncs beside them cost more than inline
                    # ones (measured ~1,500 vs ~2,000 appends/s). Every ~40 MB (625 pages of 64 KiB).
                    conn.execute("PRAGMA wal_autocheckpoint=625")
                else:
                    # Batched appends: checkpoints run on a thread of their own (store/checkpointer.py).
                    checkpointer = WalCheckpointer(path)
                    conn.set_wal_hook(checkpointer.on_commit)
                conn.execute("PRAGMA journal_size_limit=67108864")
            conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            conn.execute("PRAGMA cache_size=-65536")
        except apsw.BusyError:
            raise LogBusy(_busy_message(path, "open")) from None
        except (apsw.CorruptError, apsw.NotADBError) as exc:
            raise LogCorrupt(_corrupt_message(path, str(exc))) from None
        except apsw.Error as exc:
            raise LogError(f"cannot open tape log {path}: {exc}") from None
        log = cls(path, conn, durable=durable, readonly=readonly, checkpointer=checkpointer)
        if not readonly and not new:
            log._refuse_damaged()
        return log

    def _refuse_damaged(self) -> None:
        """A writer appends nothing to a file whose pages fail SQLite's quick check."""
        try:
            problems = _problem_lines(r[0] for r in self._conn.execute("PRAGMA quick_check(3)"))
        except apsw.BusyError:
            self.close()
            raise LogBusy(_busy_message(self.path, "check")) from None
        except apsw.Error as exc:
            problems = [str(exc)]
        if problems != ["ok"]:
            self.close()
            raise LogCorrupt(_corrupt_message(self.path, problems[0]) + "; nothing was written")

    def integrity_problems(self, limit: int = 10) -> list[str]:
        """SQLite's full integrity check of the file's pages and indexes: [] when sound."""
        try:
            found = _problem_lines(r[0] for r in self._conn.execute(f"PRAGMA integrity_check({int(limit)})"))
        except (apsw.CorruptError, apsw.NotADBError) as exc:
            return [str(exc)]
        return [] if found == ["ok"] else found

    def chain_format(self) -> int:
        """The hash chain format of this file (CHAIN_V1 for a log created before chain v2)."""
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise LogError(f"{self.path} was written by a newer tape (log format {version}); upgrade tape")
        return CHAIN_V1 if version <= CHAIN_V1 else CHAIN_V2

    def _init_schema(self) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")  # the write lock first: a read that upgrades can fail at once
        except apsw.BusyError:
            self.close()
            raise LogBusy(_busy_message(self.path, "create")) from None
        try:
            (app_id,) = conn.execute("PRAGMA application_id").fetchone()
            if app_id != APPLICATION_ID:
                conn.execute(SCHEMA)
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self.close()
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._readonly and not self._deferred:
            self.sync_views(wait=False)  # what this writer appended becomes queryable in the views
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._conn.close()

    def sync_views(self, *, wait: bool = True) -> int:
        """Create the SQL views when missing and project the events appended since the last sync
        (store/views.py). ``wait=False`` skips, instead of waiting, while another writer holds the
        lock: that writer (or the next open) catches the projection up. Returns rows projected."""
        if self._readonly:
            return 0
        conn = self._conn
        if not wait:
            conn.setbusytimeout(0)
        try:
            views.ensure_views(conn)
            return views.sync_views(conn)
        except apsw.BusyError:
            return 0
        except apsw.ReadOnlyError:
            return 0  # a log on read-only storage keeps the views it has
        finally:
            if not wait:
                conn.setbusytimeout(BUSY_TIMEOUT_MS)

    def rebuild_views(self) -> int:
        """Drop and rebuild the views' projection from the whole log; returns rows projected."""
        return views.rebuild_views(self._conn)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ appending

    def append(
        self,
        stream: str,
        events: Sequence[Event],
        *,
        expected_version: int | None = None,
        event_ids: Sequence[str] | None = None,
        durable: bool | None = None,
    ) -> AppendResult:
        """Append events to one stream in one transaction.

        ``expected_version`` is the version the writer last saw (0 for a new stream); a stale one raises
        :class:`ConcurrencyConflict`. ``None`` skips the check, and then idempotency needs ``event_ids``.
        Appending event ids that are all stored already is a no-op reported as ``duplicate``.
        """
        ids: Sequence[str | None] = event_ids if event_ids is not None else [None] * len(events)
        if len(ids) != len(events):
            raise ValueError("event_ids must match events one to one")
        items = [NewEvent(stream, e, i) for e, i in zip(events, ids, strict=True)]
        expected = {stream: expected_version} if expected_version is not None else {}
        return self.append_batch(items, expected_versions=expected, durable=durable)

    def append_batch(
        self,
        items: Sequence[NewEvent],
        *,
        expected_versions: Mapping[str, int] | None = None,
        durable: bool | None = None,
    ) -> AppendResult:
        """Append events of any streams, in the given order, as one all-or-nothing transaction."""
        if not items:
            return AppendResult("appended", 0, 0, 0, {})
        expected_versions = expected_versions or {}
        full = self._durable if durable is None else durable
        conn = self._conn
        if full != self._durable:
            conn.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
        # Rows are short-lived tuples of atoms: collecting them mid-batch only costs time (~12 %).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._begin_write()
            try:
                result = self._append_locked(items, expected_versions)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        finally:
            if gc_was_enabled:
                gc.enable()
            if full != self._durable:
                conn.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")

    def _begin_write(self) -> None:
        """Take the write lock, waiting up to BUSY_TIMEOUT_MS while another writer holds it."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except apsw.BusyError:
            raise LogBusy(_busy_message(self.path, "write")) from None
        except apsw.ReadOnlyError:
            raise LogError(f"cannot write to {self.path}: the file or its folder is read-only") from None

    def _append_locked(self, items: Sequence[NewEvent], expected: Mapping[str, int]) -> AppendResult:
        conn = self._conn
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        head_seq, prev = (row[0], row[1]) if row else (0, GENESIS)
        # The distinct streams, in first-seen order, found at C speed (a batch holds thousands of events).
        versions = {s: self._stream_version_locked(s) for s in dict.fromkeys(map(_stream_of, items))}
        stale = [(s, v, versions[s]) for s, v in expected.items() if s in versions and versions[s] != v]
        # Default ids are numbered from the version the writer expected, so a retry of an append that
        # did commit (and now looks stale) derives the same ids and is recognised as a duplicate.
        id_shift = {s: expected.get(s, v) - v for s, v in versions.items()}

        chain = _Chain(head_seq, prev, versions, chain_format=self.chain_format())
        rows = chain.rows(items, id_shift)
        seq, next_version = chain.seq, chain.versions
        if stale:
            dup = self._duplicate_result([r[3] for r in rows])
            if dup is not None:
                return dup
            stream, exp, actual = stale[0]
            raise ConcurrencyConflict(stream, exp, actual)
        conn.execute("SAVEPOINT rows")
        try:
            conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", rows)
        except apsw.ConstraintError:
            # Undo the rows that went in before the clash, then ask whether this was a retry.
            conn.execute("ROLLBACK TO rows")
            conn.execute("RELEASE rows")
            dup = self._duplicate_result([r[3] for r in rows])
            if dup is not None:
                return dup
            raise
        conn.execute("RELEASE rows")
        return AppendResult("appended", head_seq + 1, seq, len(rows), next_version)

    def defer_checkpoint(self) -> None:
        """Leave copying the WAL into the main file to the next writer (or the last connection to
        close): a writer process that appends one large run then exits should not pay for it."""
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._conn.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
        self._deferred = True  # ... and so is catching the SQL views up (the next open does it)

    def begin_stream(self) -> StreamingAppend:
        """Start one write transaction that receives events in several chunks (a run written while
        it is computed). Nothing is visible to readers until :meth:`StreamingAppend.commit`."""
        conn = self._conn
        self._begin_write()
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        head_seq, prev = (row[0], row[1]) if row else (0, GENESIS)
        chain = _Chain(head_seq, prev, {}, self._stream_version_locked, self.chain_format())
        return StreamingAppend(self, chain)

    def _duplicate_result(self, ids: Sequence[str]) -> AppendResult | None:
        """All ids stored -> the duplicate result; none stored -> None; some -> IdempotencyError."""
        found: dict[str, tuple[int, str, int]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for event_id, seq, stream, version in self._conn.execute(
                f"SELECT event_id, seq, stream, version FROM events WHERE event_id IN ({marks})", chunk
            ):
                found[event_id] = (seq, stream, version)
        if not found:
            return None
        if len(found) != len(set(ids)):
            missing = next(i for i in ids if i not in found)
            raise IdempotencyError(
                f"retried append is inconsistent: event id {missing!r} is new but others are already stored"
            )
        seqs = [found[i][0] for i in ids]
        versions: dict[str, int] = {}
        for _seq, stream, version in sorted(found.values()):
            versions[stream] = max(versions.get(stream, 0), version)
        return AppendResult("duplicate", min(seqs), max(seqs), len(ids), versions)

    def _stream_version_locked(self, stream: str) -> int:
        row = self._conn.execute("SELECT max(version) FROM events WHERE stream=?", (stream,)).fetchone()
        return row[0] or 0

    # ------------------------------------------------------------------ reading

    def stream_version(self, stream: str) -> int:
        """Current version of a stream (0 when it has no events)."""
        return self._stream_version_locked(stream)

    def head(self) -> tuple[int, str]:
        """(last seq, its hash as hex); (0, 64 zeros) for an empty log."""
        row = self._conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1].hex()) if row else (0, GENESIS.hex())

    def count(self) -> int:
        """Number of events stored."""
        return self._conn.execute("SELECT count(*) FROM events").fetchone()[0]

    def read(
        self,
        *,
        stream: str | None = None,
        stream_prefix: str | None = None,
        kinds: Iterable[str] | None = None,
        after_seq: int = 0,
        limit: int | None = None,
        descending: bool = False,
    ) -> Iterator[Recorded]:
        """Stream events in seq order (or newest first), decoded, without loading the file into memory."""
        where, args = ["seq > ?"], [after_seq]
        if stream is not None:
            where.append("stream = ?")
            args.append(stream)
        if stream_prefix is not None:
            # Range scan instead of LIKE: prefixes may contain '%' or '_' and this uses the index.
            where.append("stream >= ? AND stream < ?")
            args += [stream_prefix, stream_prefix + "\U0010ffff"]
        kind_list = list(kinds) if kinds is not None else None
        if kind_list is not None:
            where.append(f"kind IN ({','.join('?' * len(kind_list))})")
            args += kind_list
        sql = (
            "SELECT seq, stream, version, event_id, kind, ts, body FROM events WHERE "
            + " AND ".join(where)
            + (" ORDER BY seq DESC" if descending else " ORDER BY seq")
            + (f" LIMIT {int(limit)}" if limit is not None else "")
        )
        dec, rec = decode, Recorded
        for seq, st, version, event_id, kind, ts, body in self._conn.execute(sql, args):
            yield rec(seq, st, version, event_id, kind, ts, dec(body))

    def events(self, **filters: Any) -> Iterator[Event]:
        """Like :meth:`read` but yields only the event structs."""
        for r in self.read(**filters):
            yield r.event

    def streams(self, prefix: str = "") -> list[str]:
        """Distinct stream names, optionally under a prefix."""
        rows = self._conn.execute(
            "SELECT DISTINCT stream FROM events WHERE stream >= ? AND stream < ? ORDER BY stream",
            (prefix, prefix + "\U0010ffff"),
        )
        return [r[0] for r in rows]

    def get(self, event_id: str) -> Recorded | None:
        """The event stored under ``event_id`` (through its UNIQUE index), or None."""
        row = self._conn.execute(
            "SELECT seq, stream, version, event_id, kind, ts, body FROM events WHERE event_id = ?",
            (event_id,),
        ).fetchone()
        if row is None:
            return None
        seq, stream, version, eid, kind, ts, body = row
        return Recorded(seq, stream, version, eid, kind, ts, decode(body))

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only SQL query against the log (for projections and reports)."""
        return list(self._conn.execute(sql, args))

    # ------------------------------------------------------------------ integrity

    def verify(self, expect_head: str | None = None) -> VerifyReport:
        """Check the file's pages (SQLite's integrity check), recompute the hash chain from the first
        event, hold every completed run to the event count its RunEnded's id carries, and compare the
        head with ``expect_head`` ("SEQ:HASH" as printed, or the hash alone). The report names the
        first seq that does not hold."""
        problems = self.integrity_problems()
        if problems:
            why = f"SQLite's integrity check fails: {problems[0]}"
            return VerifyReport(False, 0, 0, "", None, why, damaged=True)
        v2 = self.chain_format() >= CHAIN_V2
        prev, expected_seq, count = GENESIS, 1, 0
        versions: dict[str, int] = {}
        framed: dict[str, bytes] = {}
        kinds: dict[str, bytes] = {}
        runs = _RunTally()
        sha, join, q, frame = _sha256, b"".join, _Q, _framed
        rows = self._conn.execute(
            "SELECT seq, stream, version, event_id, kind, ts, body, hash FROM events ORDER BY seq"
        )
        for seq, stream, version, event_id, kind, ts, body, stored in rows:
            if seq != expected_seq:
                why = f"seq {expected_seq} is missing (next stored seq is {seq})"
                return self._bad(count, expected_seq, why)
            fs = framed.get(stream)
            if fs is None:
                fs = framed[stream] = frame(stream)
            if version != versions.get(stream, 0) + 1:
                return self._bad(count, seq, f"stream {stream!r} jumps to version {version}")
            versions[stream] = version
            fk = kinds.get(kind)
            if fk is None:
                fk = kinds[kind] = frame(kind)
            if v2:
                h = sha(join((prev, q(seq), fs, q(version), frame(event_id), fk, q(ts), body))).digest()
            else:
                h = sha(join((prev, q(seq), fs, q(version), fk, q(ts), body))).digest()
            if h != stored:
                why = "hash mismatch: the row (or its event id) was altered, removed or reordered"
                return self._bad(count, seq, why if v2 else why.replace(" (or its event id)", ""))
            run, sep, number = event_id.partition(":")
            if sep and number.isdigit():  # a run's events are numbered <run_id>:<n>, 1..
                runs.count(run, seq, kind, body, int(number))
            prev, expected_seq, count = h, expected_seq + 1, count + 1
        head_hash = prev.hex()
        if expect_head is not None:
            mismatch = _head_mismatch(expect_head, count, head_hash)
            if mismatch:
                return VerifyReport(False, count, count, head_hash, min(count + 1, mismatch[0]), mismatch[1])
        short = runs.stopped_short()
        if short:
            return VerifyReport(False, count, count, head_hash, short[0], short[1])
        return VerifyReport(True, count, count, head_hash)

    def _bad(self, count: int, seq: int, reason: str) -> VerifyReport:
        return VerifyReport(False, count, seq - 1, "", seq, reason)


class _RunTally:
    """Each run's events as verify meets them, to find a run whose events stop short: a completed run
    with fewer events than its RunEnded's number, or a backtest (written whole, in one transaction)
    without its RunEnded."""

    def __init__(self) -> None:
        self.events: dict[str, int] = {}
        self.last_seq: dict[str, int] = {}
        self.ended: dict[str, tuple[int, int]] = {}  # run -> (seq of RunEnded, its number)
        self.backtests: list[str] = []

    def count(self, run: str, seq: int, kind: str, body: bytes, number: int) -> None:
        self.events[run] = self.events.get(run, 0) + 1
        self.last_seq[run] = seq
        if kind == "run_ended":
            self.ended[run] = (seq, number)
        elif kind == "run_started" and getattr(decode(body), "mode", "") == "backtest":
            self.backtests.append(run)

    def stopped_short(self) -> tuple[int, str] | None:
        """(first seq concerned, why) for the first run that stops short, or None."""
        for run, (seq, numbered) in self.ended.items():
            if self.events[run] < numbered:
                return seq, f"run {run} stops short: {self.events[run]} of its {numbered} events are stored"
        for run in self.backtests:
            if run not in self.ended:
                last = self.last_seq[run]
                why = (
                    f"backtest {run} stops short at seq {last} without its RunEnded "
                    "(a backtest is written whole: the events after it are missing)"
                )
                return last + 1, why
        return None


def _head_mismatch(expect_head: str, count: int, head_hash: str) -> tuple[int, str] | None:
    """(first seq concerned, why) when the log's head is not the one kept outside it; None when it is."""
    seq_text, sep, want = expect_head.strip().lower().rpartition(":")
    if sep and not seq_text.isdigit():
        raise LogError(
            f"--expect-head takes SEQ:HASH or HASH as `tape verify` prints it, not {expect_head!r}"
        )
    if sep:
        expected_seq = int(seq_text)
        if expected_seq > count:
            missing = expected_seq - count
            return (
                count + 1,
                f"{missing} events after seq {count} are missing (the head kept is at seq {expected_seq})",
            )
        if expected_seq < count:
            return (
                expected_seq + 1,
                f"the log has {count - expected_seq} events after the head kept at seq {expected_seq}",
            )
    if want != head_hash:
        return count, f"head hash {head_hash} (seq {count}) differs from the one expected"
    return None


@contextmanager
def _creating_in(parent: str, path: str) -> Iterator[None]:
    """Hold an exclusive lock on the log's directory while the log is created (flock: released by the
    kernel if the process dies, and no lock file is left behind)."""
    try:
        fd = os.open(parent, os.O_RDONLY)
    except OSError:  # a directory we may not read: create as before, without the turn-taking
        yield
        return
    try:
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LogBusy(_busy_message(path, "create")) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _check_is_tape_log(path: str) -> None:
    """Refuse, without writing a byte, anything that is not a tape log."""
    try:
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
        try:
            conn.setbusytimeout(BUSY_TIMEOUT_MS)
            (app_id,) = conn.execute("PRAGMA application_id").fetchone()
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
    except apsw.NotADBError:
        raise LogError(f"{path} is not a tape log (not a SQLite database)") from None
    except apsw.BusyError:
        raise LogBusy(_busy_message(path, "read")) from None
    except apsw.CorruptError as exc:
        raise LogCorrupt(_corrupt_message(path, str(exc))) from None
    except apsw.Error as exc:
        raise LogError(f"cannot read {path}: {exc}") from None
    if app_id != APPLICATION_ID or "events" not in tables:
        if not tables and app_id == 0:
            raise LogError(f"{path} is an empty SQLite file, not a tape log")
        raise LogError(f"{path} is a SQLite database of another application, not a tape log")


def _problem_lines(rows: Iterable[str]) -> list[str]:
    """SQLite's check report as one problem a line, without its "*** in database main ***" headings."""
    lines = [line.strip() for row in rows for line in str(row).splitlines()]
    return [line for line in lines if line and not line.startswith("***")]


def _corrupt_message(path: str, detail: str) -> str:
    return f"{path} is damaged (SQLite integrity check: {detail.strip()}); run `tape verify` for details"


def _busy_message(path: str, doing: str) -> str:
    """Who holds the log, as far as /proc tells (Linux); the wait was bounded by BUSY_TIMEOUT_MS."""
    holders = _holders(path)
    held = f"held by {', '.join(holders)}" if holders else "held by another process"
    waited = BUSY_TIMEOUT_MS // 1000
    return f"log is busy ({held}): could not {doing} {path} within {waited} s; try again when it is done"


def _holders(path: str) -> list[str]:
    """Other processes with the log (or its WAL) open: 'pid N (command)'."""
    targets = {os.path.realpath(path + suffix) for suffix in ("", "-wal")}
    me, found = os.getpid(), []
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []
    for pid in pids:
        if pid == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in targets for fd in fds):
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    command = " ".join(f.read().replace(b"\0", b" ").decode(errors="replace").split())
                found.append(f"pid {pid} ({command[:60]})")
        except OSError:
            continue
    return found[:3]


class StreamingAppend:
    """An open write transaction fed in chunks; see :meth:`EventLog.begin_stream`."""

    def __init__(self, log: EventLog, chain: _Chain) -> None:
        self._log, self._chain = log, chain
        self._first = chain.seq + 1
        self._gc = gc.isenabled()
        gc.disable()

    def add(self, items: Iterable[NewEvent]) -> int:
        """Chain and insert ``items`` (explicit event ids required); returns the last seq so far."""
        rows = self._chain.rows(items)
        self._log._conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", rows)
        return self._chain.seq

    def add_encoded(self, items: Iterable[tuple[str, str, int, bytes | msgspec.Raw, str]]) -> int:
        """Like :meth:`add` for events already encoded: (stream, kind, ts, body, event_id)."""
        rows = self._chain.rows_encoded(items)
        self._log._conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", rows)
        return self._chain.seq

    def commit(self) -> AppendResult:
        """Make every chunk visible at once."""
        try:
            self._log._conn.execute("COMMIT")
        finally:
            self._restore_gc()
        count = self._chain.seq - self._first + 1
        return AppendResult("appended", self._first, self._chain.seq, count, dict(self._chain.versions))

    def rollback(self) -> None:
        """Discard every chunk."""
        try:
            self._log._conn.execute("ROLLBACK")
        finally:
            self._restore_gc()

    def _restore_gc(self) -> None:
        if self._gc:
            gc.enable()
