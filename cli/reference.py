"""The CLI reference (docs/cli.md), generated from the typer app itself so it cannot drift.

``python -m tape.cli.reference > docs/cli.md`` regenerates it; tests/test_docs.py fails when the file
and the app disagree.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import typer

HEADER = """# tape command-line reference

Generated from the `tape` app by `make docs` (`python -m tape.cli.reference`); `make test` fails when
this page and the commands disagree. `tape COMMAND --help` prints the same in the terminal.
"""


# typer vendors its own click, so commands and parameters are told apart by what they have.
def _is_group(command: Any) -> bool:
    return hasattr(command, "list_commands")


def _arguments(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "argument"]


def _options(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "option" and not p.hidden]


def _walk(group: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    ctx = group.context_class(group, info_name=prefix)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        path = f"{prefix} {name}"
        yield path, command
        if _is_group(command):
            yield from _walk(command, path)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(param: Any) -> str:
    if param.param_type_name == "option" and param.is_flag:
        return ""
    default = param.default
    if default is None or default == "" or default == () or callable(default):
        return ""
    if isinstance(default, list | tuple):
        return ", ".join(str(v) for v in default)
    return str(default)


def _argument_name(argument: Any) -> str:
    name = (argument.metavar or argument.name).upper()
    return f"{name}..." if argument.nargs == -1 else name


def _usage(path: str, command: Any) -> str:
    args = [_argument_name(p) for p in _arguments(command)]
    subcommand = " COMMAND" if _is_group(command) else ""
    return " ".join([path, "[OPTIONS]", *args]) + subcommand


def _command_section(path: str, command: Any) -> list[str]:
    lines = [f"## `{path}`", ""]
    help_text = inspect.cleandoc(command.help or "")
    if help_text:
        lines += [help_text, ""]
    lines += ["```", _usage(path, command), "```", ""]
    arguments, options = _arguments(command), _options(command)
    if arguments:
        lines += ["| argument | required |", "| --- | --- |"]
        lines += [f"| `{_argument_name(a)}` | {'yes' if a.required else 'no'} |" for a in arguments]
        lines.append("")
    if options:
        lines += ["| option | default | description |", "| --- | --- | --- |"]
        for option in options:
            names = ", ".join(f"`{n}`" for n in [*option.opts, *option.secondary_opts])
            lines.append(f"| {names} | {_cell(_default(option))} | {_cell(option.help or '')} |")
        lines.append("")
    return lines


def cli_reference(app: typer.Typer) -> str:
    """Markdown for every command of ``app``: usage, help, arguments and options with defaults."""
    root = typer.main.get_command(app)
    lines = [HEADER, "## `tape`", "", inspect.cleandoc(root.help or ""), ""]
    shared = _options(root)
    if shared:
        lines += ["Options every command takes (before the command name):", ""]
        lines += ["| option | default | description |", "| --- | --- | --- |"]
        for option in shared:
            env = f" (environment: `{option.envvar}`)" if option.envvar else ""
            described = _cell(option.help or "") + env
            lines.append(f"| `{option.opts[0]}` | {_cell(_default(option))} | {described} |")
        lines.append("")
    commands = list(_walk(root, "tape"))
    lines += ["Commands: " + ", ".join(f"`{path.removeprefix('tape ')}`" for path, _ in commands), ""]
    for path, command in commands:
        lines += _command_section(path, command)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    from tape.cli.app import app as tape_app

    print(cli_reference(tape_app), end="")
