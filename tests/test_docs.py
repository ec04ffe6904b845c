"""Every Python block in README.md and docs/*.md runs, so the docs cannot drift from the code.

Blocks in one page run in order in one namespace (a page is a tutorial), in a temporary
working directory. A block fenced as ```python is run; ```text, ```bash and others are not.
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run(page: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for i, code in enumerate(blocks(page)):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # name the block, then fail with the original error
            raise AssertionError(f"{page.name}, python block {i} failed:\n{code}") from exc


def test_api_reference_is_current() -> None:
    """docs/api.md is generated from the docstrings; regenerate with `python docs/make_api.py`."""
    import runpy

    make = runpy.run_path(str(ROOT / "docs" / "make_api.py"))
    assert (ROOT / "docs" / "api.md").read_text() == make["render"](), \
        "docs/api.md is out of date: run `python docs/make_api.py`"


MARKDOWN = [*PAGES, ROOT / "benchmarks" / "README.md", ROOT / "CHANGELOG.md"]


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_fences_close_and_tables_hold_together(page: Path) -> None:
    """An unclosed fence swallows the text after it; a blank line inside a table cuts off its
    last rows, which then render as a paragraph of pipes."""
    lines = page.read_text().splitlines()
    fences = [i + 1 for i, line in enumerate(lines) if line.startswith("```")]
    # read in pairs, a fence opens with its language (```text) and closes bare (```)
    odd = [n for k, n in enumerate(fences) if (lines[n - 1] == "```") != (k % 2 == 1)]
    assert len(fences) % 2 == 0 and not odd, \
        f"{page.relative_to(ROOT)}: a code fence is left open (the fence at line {odd[0] if odd else fences[-1]})"
    outside = "\n".join(line for i, line in enumerate(lines) if not _in_fence(i, fences))
    assert not re.search(r"^\|.*\|\n\n\|.*\|$", outside, re.M), f"{page.relative_to(ROOT)}: a blank line splits a table"


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_placeholder_is_left_in_the_prose(page: Path) -> None:
    """A draft's stand-in for a table or figure yet to be measured (a line that is one
    upper-case name, such as FLOAT32_TABLE, or a TODO) must not outlive the draft."""
    lines = page.read_text().splitlines()
    fences = [i + 1 for i, line in enumerate(lines) if line.startswith("```")]
    left = [f"line {i + 1}: {line}" for i, line in enumerate(lines)
            if not _in_fence(i, fences) and (re.fullmatch(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+", line.strip())
                                             or re.search(r"\bTODO\b|\bTBD\b|\bXXX\b", line))]
    assert not left, f"{page.relative_to(ROOT)}: placeholders left in: {left}"


def _in_fence(i: int, fences: list[int]) -> bool:
    return sum(f <= i for f in fences) % 2 == 1


def test_api_reference_covers_the_application_and_documents_everything() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    assert "(undocumented)" not in text
    for name in ("Config", "fit", "compare", "Comparison", "detectable", "recipe"):
        assert f"odenets.app.{name}" in text, name


def test_license_changelog_and_version_agree() -> None:
    import odenets

    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]
    assert odenets.__version__ == version
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.findall(r"^## (\S+)", changelog, re.M)[0] == version, "CHANGELOG.md starts with this release"
    assert "from odenets import solvers, zoo" in changelog
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "Copyright (c) 2026 the odenets authors" in license_text
