"""Writing one run's events to the log as a single transaction, in this process or on the other core.

A long backtest produces hundreds of thousands of events. Chaining and inserting them costs about as
much as computing them, so for long runs the events are streamed, chunk by chunk while the loop runs, to a
writer process (``python -m store.run_writer``) that owns the write transaction: the two halves overlap on
two cores. Either way the run lands all at once on commit, or not at all.

Event ids are ``<run_id>:<n>`` (n = 1.. in run order), so writing the same run twice is a no-op.
"""

from __future__ import annotations

import json
import queue
import struct
import subprocess
import sys
import threading
from typing import Any, BinaryIO, Protocol

import msgspec

from tape.events.errors import TapeError
from tape.events.schema import VERSION_MARK, Event, split_tag
from tape.events.streams import RUN_LEVEL_KINDS, route_of
from tape.store.log import AppendResult, EventLog, LogError, NewEvent

PIPELINE_MIN_BARS = 200_000  # below this the writer process's start-up costs more than it saves
_FRAME = struct.Struct(">I")


def run_items(run_id: str, events: list[Event], first_number: int) -> list[NewEvent]:
    """Events with their streams and ids, numbered from ``first_number``."""
    return [
        NewEvent(route_of(run_id, e), e, f"{run_id}:{n:08d}")
        for n, e in enumerate(events, start=first_number)
    ]


class RunSink(Protocol):
    """Where a driver hands a run's events while it computes them."""

    def add(self, events: list[Event]) -> None: ...

    def commit(self) -> AppendResult: ...

    def abort(self) -> None: ...


class LocalRunSink:
    """Collects the run and appends it in one batch at commit (short runs)."""

    def __init__(self, log: EventLog, run_id: str) -> None:
        self._log, self._run_id = log, run_id
        self._events: list[Event] = []

    def add(self, events: list[Event]) -> None:
        self._events.extend(events)

    def commit(self) -> AppendResult:
        return self._log.append_batch(run_items(self._run_id, self._events, 1))

    def abort(self) -> None:
        self._events.clear()


class PipedRunSink:
    """Streams the run to a writer process; chunks are queued so the loop never waits on the pipe."""

    def __init__(self, log_path: str, run_id: str) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tape.store.run_writer", log_path, run_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._feeder = threading.Thread(target=self._feed, name="tape-run-feeder", daemon=True)
        self._feeder.start()
        self._encode = msgspec.msgpack.Encoder().encode

    def _feed(self) -> None:
        pipe = self._proc.stdin
        assert pipe is not None
        try:
            while (chunk := self._queue.get()) is not None:
                pipe.write(_FRAME.pack(len(chunk)))
                pipe.write(chunk)
            pipe.write(_FRAME.pack(0))  # end of run: commit
            pipe.close()
        except (BrokenPipeError, OSError):
            pass  # the writer died; commit() reports what it said

    def add(self, events: list[Event]) -> None:
        if events:
            self._queue.put(self._encode(events))

    def commit(self) -> AppendResult:
        self._queue.put(None)
        self._feeder.join()  # the end-of-run frame is written and stdin closed before we read
        assert self._proc.stdout is not None and self._proc.stderr is not None
        out, err = self._proc.stdout.read(), self._proc.stderr.read()
        self._proc.wait()
        try:
            answer: dict[str, Any] = json.loads(out.decode() or "{}")
        except ValueError:
            answer = {}
        if self._proc.returncode != 0 or "error" in answer:
            detail = answer.get("error") or err.decode().strip().splitlines()[-1:] or ["no answer"]
            raise LogError(f"the log writer failed: {detail if isinstance(detail, str) else detail[0]}")
        return msgspec.convert(answer, AppendResult)

    def abort(self) -> None:
        self._proc.kill()  # an uncommitted transaction leaves nothing behind
        self._proc.wait()


def open_sink(log: EventLog, run_id: str, *, bars: int) -> RunSink:
    """The sink that suits a run of ``bars`` bars."""
    return PipedRunSink(log.path, run_id) if bars >= PIPELINE_MIN_BARS else LocalRunSink(log, run_id)


def _read_frame(pipe: BinaryIO) -> bytes | None:
    head = pipe.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None  # the driver went away without committing
    (size,) = _FRAME.unpack(head)
    return pipe.read(size) if size else b""


class _Head(msgspec.Struct, array_like=True):
    """The leading fields of an encoded event: enough to file it without decoding it whole.
    (Array-like structs ignore trailing elements; Signal and BarReceived keep symbol, strategy here.)"""

    kind: str
    ts: int
    third: Any = None
    fourth: Any = None


def _streams_of(run_id: str, heads: list[_Head], fixed: dict[str, str]) -> list[str]:
    """Each event's stream. Most kinds have one stream per run (looked up once in ``fixed``);
    signals and bars have one per symbol (and strategy)."""
    out: list[str] = []
    add = out.append
    for head in heads:
        stream = fixed.get(head.kind)
        if stream is None:
            kind = split_tag(head.kind)[0]
            if kind == "signal":
                stream = f"run/{run_id}/{head.third}/{head.fourth}"
            elif kind == "bar":
                stream = f"run/{run_id}/bars/{head.third}"
            else:
                suffix = "" if kind in RUN_LEVEL_KINDS else "/portfolio"
                stream = fixed[head.kind] = f"run/{run_id}{suffix}"
        add(stream)
    return out


def serve(log_path: str, run_id: str, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """The writer process: read chunks until the empty frame, then commit and report as JSON.

    A chunk is a msgpack array of events; each element's bytes are already the event's stored body,
    so bodies are sliced out (``Raw``), never decoded and re-encoded.
    """
    heads_of = msgspec.msgpack.Decoder(list[_Head]).decode
    bodies_of = msgspec.msgpack.Decoder(list[msgspec.Raw]).decode
    try:
        log = EventLog.open(log_path)
        log.defer_checkpoint()
        stream = log.begin_stream()
    except TapeError as exc:
        stdout.write(json.dumps({"error": str(exc)}).encode())
        return 1
    number, fixed = 1, {}
    try:
        while (frame := _read_frame(stdin)) is not None:
            if not frame:
                result = stream.commit()
                stdout.write(msgspec.json.encode(result))
                return 0
            heads, bodies = heads_of(frame), bodies_of(frame)
            # Column by column (list comprehensions run at C speed), then zipped: a tuple per event
            # built in Python was a third of this process's time. Raw bodies bind and hash as buffers.
            ids = [f"{run_id}:{n:08d}" for n in range(number, number + len(heads))]
            stream.add_encoded(
                zip(
                    _streams_of(run_id, heads, fixed),
                    [h.kind.partition(VERSION_MARK)[0] for h in heads],  # stored kind: the tag without "@N"
                    [h.ts for h in heads],
                    bodies,
                    ids,
                    strict=True,
                )
            )
            number += len(heads)
    except Exception as exc:  # report, never half-commit
        stream.rollback()
        stdout.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        return 1
    stream.rollback()
    return 3


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1], sys.argv[2], sys.stdin.buffer, sys.stdout.buffer))
