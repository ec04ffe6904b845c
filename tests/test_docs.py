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
