"""The documentation stays true: the CLI reference is the app's, and README links stay inside the repo."""

from __future__ import annotations

import re

from tape.cli.app import app
from tape.cli.reference import cli_reference
from tape.cli.root_help import TARGET, module_source
from tests.conftest import REPO

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_cli_reference_matches_the_app() -> None:
    generated = cli_reference(app)
    on_disk = (REPO / "docs" / "cli.md").read_text()
    assert on_disk == generated, "docs/cli.md is stale: python -m tape.cli.reference > docs/cli.md"


def test_stored_root_help_matches_the_app() -> None:
    assert TARGET.read_text() == module_source(), "cli/root_help_text.py is stale: run `make docs`"


def test_readme_and_docs_link_only_to_files_in_the_repository() -> None:
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue  # a web page is not a file of ours
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(REPO), f"{page.name} links outside the repository: {target}"
            assert resolved.exists(), f"{page.name} links to a missing file: {target}"


def test_readme_names_no_path_outside_the_repository() -> None:
    assert "../" not in (REPO / "README.md").read_text()


def test_readme_reaches_a_first_result_and_its_chart_within_forty_lines() -> None:
    first_screen = (REPO / "README.md").read_text().splitlines()[:40]
    assert any(line.startswith("make demo") for line in first_screen)
    assert any(line.startswith("make test") for line in first_screen)
    assert any("docs/images/demo_equity_curve.png" in line for line in first_screen)
