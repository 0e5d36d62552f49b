"""Errors a user can cause and fix. The CLI prints their message on one line and exits non-zero."""


class TapeError(Exception):
    """Base of every user-facing error: the message says what is wrong and, where possible, what to do."""

    exit_code = 2


class ConfigError(TapeError, ValueError):
    """A parameter, option or configuration value is invalid (a ValueError, as Python code expects)."""


class DataError(TapeError, ValueError):
    """Market data is missing, malformed or does not cover what was asked for."""
