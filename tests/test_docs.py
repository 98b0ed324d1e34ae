"""The documentation's Markdown stays renderable: its tables are not folded into paragraphs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
SEPARATOR = re.compile(r"^\s*\|(\s*:?-{3,}:?\s*\|)+\s*$")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_table_keeps_its_header_and_rows_on_lines_of_their_own(page: Path) -> None:
    lines = page.read_text().splitlines()
    folded = [n for n, line in enumerate(lines, 1) if "|---" in line and not SEPARATOR.match(line)]
    assert not folded, f"{page.name}: a table folded into text at line(s) {folded[:10]}"
    for n, line in enumerate(lines, 1):
        if SEPARATOR.match(line):
            header = lines[n - 2].strip() if n >= 2 else ""
            assert header.startswith("|") and header.endswith("|"), f"{page.name}:{n}: no header row"
            width = line.strip().strip("|").count("|")
            assert header.strip("|").count("|") >= width, f"{page.name}:{n}: header has fewer columns"
