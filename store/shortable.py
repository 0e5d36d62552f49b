"""Which stocks are easy to borrow, kept per symbol in the market-data store (`tape data shortable`).

A run that may go short (``--direction short|both``) and does not say ``--shortable`` itself takes the
store's list for its symbols; the list lands in the run's config, so the log records what the run
assumed and a replay needs no store. An explicit ``--shortable`` wins over the store. A live Alpaca
session does not read the store: it asks Alpaca's asset flags (actors/live_session/borrow.py).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from tape.events.backtest import BacktestConfig
from tape.events.errors import ConfigError, DataError
from tape.events.symbols import is_pair

_TABLE = """CREATE TABLE IF NOT EXISTS symbol_flags (
    symbol TEXT PRIMARY KEY, shortable INTEGER NOT NULL, updated_ns INTEGER NOT NULL)"""


def set_shortable(path: Path, symbols: Iterable[str], shortable: bool) -> list[str]:
    """Mark ``symbols`` (upper-cased) easy to borrow, or not; returns them. Crypto pairs are refused:
    Alpaca never shorts them."""
    names = sorted({symbol.strip().upper() for symbol in symbols if symbol.strip()})
    pairs = [name for name in names if is_pair(name)]
    if pairs:
        raise ConfigError(f"{', '.join(pairs)}: crypto pairs are never shorted (no shortable flag)")
    if not names:
        raise ConfigError("name at least one symbol")
    db = _connect(path)
    try:
        with db:
            db.execute(_TABLE)
            now = time.time_ns()
            db.executemany(
                "INSERT OR REPLACE INTO symbol_flags VALUES (?, ?, ?)",
                [(name, int(shortable), now) for name in names],
            )
    finally:
        db.close()
    return names


def stored_shortable(path: Path | None) -> dict[str, bool]:
    """Every symbol the store has a shortable flag for (empty when there is no store or no flag)."""
    if path is None or not path.exists():
        return {}
    db = _connect(path)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name='symbol_flags'").fetchone():
            return {}
        rows = db.execute("SELECT symbol, shortable FROM symbol_flags ORDER BY symbol").fetchall()
    finally:
        db.close()
    return {symbol: bool(flag) for symbol, flag in rows}


def with_stored_shortable(config: BacktestConfig, path: Path | None) -> BacktestConfig:
    """``config`` with the store's easy-to-borrow symbols among its own as ``--shortable``, when it may
    go short and declares none itself; otherwise ``config`` unchanged (a long-only run stays as it was)."""
    if not config.risk.awaits_shortable:
        return config
    flags = stored_shortable(path)
    declared = [symbol for symbol in config.symbols if flags.get(symbol.upper())]
    return config.with_shortable(declared) if declared else config


def _connect(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path, timeout=30)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"cannot read market data {path}: {exc} (not a tape market-data file?)") from None
    return db
