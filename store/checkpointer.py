"""Copying the log's WAL into the database file on a second thread, beside the appends.

SQLite's own auto-checkpoint runs inside the commit that crosses the threshold, so a long series of
batched appends stops every ~40 MB to copy pages. Here the commit only signals; a thread with its own
connection runs a PASSIVE checkpoint (it never blocks a writer or a reader) while the appending thread
goes on chaining the next batch. apsw releases the GIL inside SQLite, so the two use both cores.
"""

from __future__ import annotations

import contextlib
import threading

import apsw

CHECKPOINT_PAGES = 625  # ~40 MB of 64 KiB pages in the WAL before a checkpoint is asked for


class WalCheckpointer:
    """Registered as a connection's WAL hook; checkpoints on its own thread when the WAL grows."""

    def __init__(self, path: str, *, pages: int = CHECKPOINT_PAGES) -> None:
        self._path, self._pages = path, pages
        self._wake = threading.Event()
        self._closing = False
        self._asked_at = 0  # WAL size when a checkpoint was last asked for
        self._thread: threading.Thread | None = None

    def on_commit(self, _conn: apsw.Connection, _db: str, pages: int) -> int:
        """The WAL hook: called after every commit with the WAL's size in pages."""
        if pages < self._asked_at:
            self._asked_at = 0  # the WAL restarted from its beginning after a complete checkpoint
        # Once per ``pages`` new pages: the WAL keeps growing while a checkpoint runs, and asking on
        # every commit would checkpoint (and fsync) once per commit.
        if pages - self._asked_at >= self._pages:
            self._asked_at = pages
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tape-wal-checkpoint", daemon=True)
                self._thread.start()
            self._wake.set()
        return apsw.SQLITE_OK

    def _run(self) -> None:
        conn = apsw.Connection(self._path)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._closing:
                    return
                # Busy or interrupted: the next commit asks again, and closing checkpoints the rest.
                with contextlib.suppress(apsw.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def close(self) -> None:
        """Stop the thread (before the log's own connection closes and checkpoints what is left)."""
        if self._thread is not None:
            self._closing = True
            self._wake.set()
            self._thread.join()
            self._thread = None
