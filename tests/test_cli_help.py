"""`tape --help`: every command is listed with a one-line summary, and each command's own help works."""

from __future__ import annotations

import inspect

import pytest
import typer
from typer.testing import CliRunner

from tape.cli.app import app


def _commands(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    found = [((*prefix, c.name or ""), c.callback) for c in group.registered_commands]
    for sub in group.registered_groups:
        found += _commands(sub.typer_instance, (*prefix, sub.name or ""))
    return found


COMMANDS = _commands(app)


@pytest.mark.parametrize("path,callback", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_command_summary_is_one_line(path: tuple[str, ...], callback: object) -> None:
    # The command list shows the docstring's first paragraph verbatim, line breaks included.
    summary = inspect.cleandoc(callback.__doc__ or "").split("\n\n")[0]
    assert summary and "\n" not in summary, f"tape {' '.join(path)}: {summary!r}"


def test_every_command_answers_help() -> None:
    runner = CliRunner()
    for path, _ in COMMANDS:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, (path, result.output)


@pytest.mark.parametrize("option", ["--fee-bps", "--maker-fee-bps", "--stop-band-bps"])
def test_spawn_help_lists_the_crypto_fee_options_trade_has(option: str) -> None:
    runner = CliRunner()
    for command in ("trade", "spawn"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and option in result.output, (command, result.output)
