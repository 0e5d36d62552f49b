"""The distribution claims one top-level name, `tape`, and works from its wheel alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE_FILES = ("pyproject.toml", "README.md", "tape", "events", "store", "actors", "cli")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source")
    # Built from a copy: setuptools writes build/ and *.egg-info into the tree it builds.
    for name in PACKAGE_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, source],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (found,) = out.glob("tape-*.whl")
    return found


def test_wheel_has_tape_as_its_only_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"tape"}
    expected = {"tape/events/schema.py", "tape/store/log.py", "tape/actors/jobs.py", "tape/cli/app.py"}
    assert expected <= set(names)
    assert any(name.startswith("tape/store/sample/") and name.endswith(".csv.gz") for name in names)


def _install(wheel: Path, target: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, wheel],
        check=True,
        capture_output=True,
    )


def test_installed_wheel_imports_and_runs_without_the_checkout(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    _install(wheel, target)
    assert {p.name for p in target.iterdir() if not p.name.endswith(".dist-info")} - {"bin"} == {"tape"}
    code = (
        "import tape, tape.events.schema, tape.cli.app;"
        "print(tape.__file__); print(tape.events.schema.__file__)"
    )
    # cwd outside the repository and the wheel's directory first on the path: nothing comes from the checkout.
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert all(line.startswith(str(target)) for line in out.stdout.splitlines()), out.stdout


def test_installed_wheel_backtests_from_python_as_its_command_does(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    _install(wheel, target)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "TAPE_LOG": str(work / "cli.db")}
    code = (
        "import tape; print(tape.__file__); print(tape.backtest('AAPL', 'sma_cross').summary['total_trades'])"
    )
    api = subprocess.run(
        [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, check=True
    )
    where, trades = api.stdout.split()
    assert where.startswith(str(target))
    cli = subprocess.run(
        [sys.executable, "-m", "tape.cli.app", "backtest", "AAPL", "--json", "--no-files"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(trades) == json.loads(cli.stdout)["total_trades"] > 0
