"""The CLI starts without the heavy libraries: a command imports only what it runs."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

from tape.cli.entry import RENDERING_ENV, no_args_help
from tape.cli.root_help import rendered_help

OLD_LOG = Path(__file__).parent / "data" / "log_2026-12-07.db.gz"
HEAVY = ("ray", "matplotlib", "pandas", "alpaca", "numpy")


def _heavy_loaded_after(code: str, cwd: Path | None = None) -> list[str]:
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd, check=True)
    return eval(done.stdout.strip().splitlines()[-1])  # a list literal of module names, printed above


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _heavy_loaded_after("import tape.cli.app") == []


def test_help_loads_no_heavy_library() -> None:
    code = "from tape.cli.app import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass"
    assert _heavy_loaded_after(code) == []


def test_verify_loads_no_heavy_library(tmp_path: Path) -> None:
    # A log with a backtest and a session in it, written by an earlier release.
    (tmp_path / "tape.db").write_bytes(gzip.decompress(OLD_LOG.read_bytes()))
    verify = "from tape.cli.app import app\napp(['verify'], standalone_mode=False)"
    assert _heavy_loaded_after(verify, tmp_path) == []


def test_piped_help_prints_the_apps_own_text_without_loading_the_cli(tmp_path: Path) -> None:
    # The console script's code, under its own name, with stdout a pipe as in `tape --help | less`.
    probe = (
        "import sys; sys.argv[:] = ['tape', '--help']\n"
        "from tape.cli.entry import main\n"
        "main()\n"
        "print(sorted(m for m in ('typer', 'rich', 'tape.cli.app') if m in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if k not in RENDERING_ENV}  # as a plain shell has it
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    printed, loaded = done.stdout.rsplit("\n", 2)[0] + "\n", done.stdout.splitlines()[-1]
    assert loaded == "[]"
    assert printed == rendered_help(["--help"])


def test_tape_alone_prints_the_stored_help_as_the_app_renders_it() -> None:
    from tape.cli.root_help_text import HELP

    assert no_args_help(HELP) == rendered_help([])


def test_a_command_through_the_console_script_runs_the_real_app(tmp_path: Path) -> None:
    probe = "import sys; sys.argv[:] = ['tape', 'verify']\nfrom tape.cli.entry import main\nmain()"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0 and "tape.db" in done.stdout + done.stderr
