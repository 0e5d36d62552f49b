"""The `tape` console script: `tape` and `tape --help` into a pipe or file print the stored root help.

Loading the whole command tree (typer, rich and every command's options) takes most of a second on a
busy machine; the root help it would print is fixed for a given release, so it is stored in
``root_help_text.py``, generated from the real app (`make docs`, checked by tests/test_docs.py).
The stored text is the non-terminal rendering (80 columns, no colour): it is used only when standard
output is not a terminal and nothing in the environment changes rich's width or colours; otherwise,
and for every other command, the real app runs.
"""

from __future__ import annotations

import os
import sys

# Environment variables that change how rich renders help (width, colour, terminal detection).
RENDERING_ENV = (
    "COLUMNS",
    "TERMINAL_WIDTH",
    "FORCE_COLOR",
    "PY_COLORS",
    "GITHUB_ACTIONS",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "_TYPER_FORCE_DISABLE_TERMINAL",
    "JUPYTER_COLUMNS",
)


def stored_help_applies(argv: list[str]) -> bool:
    """Whether ``argv`` asks for the root help and the stored rendering is what the app would print."""
    if argv not in ([], ["--help"]) or os.path.basename(sys.argv[0]) != "tape":
        return False  # the stored text says `Usage: tape`: only the console script may print it
    return not (sys.stdout.isatty() or any(name in os.environ for name in RENDERING_ENV))


def no_args_help(help_text: str) -> str:
    """What `tape` alone prints: the `--help` text without its last blank line, as typer renders it."""
    return help_text.removesuffix("\n")


def main() -> None:
    """Entry point of the `tape` command."""
    argv = sys.argv[1:]
    if stored_help_applies(argv):
        from tape.cli.root_help_text import HELP

        sys.stdout.write(HELP if argv else no_args_help(HELP))
        sys.stdout.flush()
        return
    from tape.cli.app import main as run_app

    run_app()


if __name__ == "__main__":
    main()
