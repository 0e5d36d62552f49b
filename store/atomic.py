"""Whole-file writes: a file appears complete or not at all, even with several processes writing it.

The temporary file has a name of its own per process and call (pid and a random part), so two
processes writing the same file at once never rename each other's half-written temporary.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


def temp_beside(path: Path) -> Path:
    """A unique hidden temporary path next to ``path`` with the same suffix (writers such as
    matplotlib choose the format from it)."""
    return path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}")


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` at once, on error it is removed."""
    tmp = temp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str, newline: str | None = None) -> None:
    """Write ``text`` to ``path`` atomically."""
    with replacing(path) as tmp, tmp.open("w", newline=newline) as handle:
        handle.write(text)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
