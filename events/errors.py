"""Errors a user can cause and fix. The CLI prints their message on one line and exits non-zero."""


class TapeError(Exception):
    """Base of every user-facing error: the message says what is wrong and, where possible, what to do."""

    exit_code = 2


class ConfigError(TapeError, ValueError):
    """A parameter, option or configuration value is invalid (a ValueError, as Python code expects)."""


class DataError(TapeError, ValueError):
    """Market data is missing, malformed or does not cover what was asked for."""


class DataUnreachable(DataError):
    """The market-data source did not answer (refused, timed out): worth asking again, unlike a
    refusal or a malformed answer."""


class StrategyContractError(TapeError):
    """A strategy's output breaks the contract (a side per bar, int8, in BUY/SELL/HOLD)."""

    exit_code = 1


class StrategyError(TapeError):
    """The user's strategy code failed: the message names their file and line."""

    exit_code = 1
