"""The documentation: a README short enough to read first, and pages whose links all lead somewhere.

The pages are README.md, every Markdown file under docs/, and bench/RESULTS.md. Every relative link in them
(``[text](path)``, ``![alt](path)``, ``[text](#anchor)``) must name a file or folder that exists, and an
``#anchor`` must name a heading of the Markdown page it points to, spelled as GitHub spells heading anchors.
Links with a scheme (``https:``, ``mailto:``) are not followed, and text in code blocks or code spans is not
Markdown, so nothing in it is a link or a heading.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 250


def documentation_pages() -> list[Path]:
    return [README, *sorted((ROOT / "docs").rglob("*.md")), ROOT / "bench" / "RESULTS.md"]


_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_CODE_SPAN = re.compile(r"(`+).*?\1")
# [text](target) or ![alt](target), the text possibly holding one level of brackets, the target optionally in
# <angle brackets> and followed by a "title".
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_INLINE_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)")


@dataclass(frozen=True)
class Link:
    page: Path
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}: {self.target}"

    @property
    def path(self) -> Path:
        """The file or folder the link names: its own page for a bare ``#anchor``."""
        path = unquote(self.target.partition("#")[0])
        return self.page if not path else (self.page.parent / path).resolve()

    @property
    def anchor(self) -> str | None:
        _, hash_sign, anchor = self.target.partition("#")
        return unquote(anchor) if hash_sign else None


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks, with code spans blanked out."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1) == fence:
                fence = None
            continue
        if opening:
            fence = opening.group(1)
            continue
        lines.append((number, _CODE_SPAN.sub(lambda span: "x" * len(span.group(0)), line)))
    return lines


def relative_links(page: Path) -> list[Link]:
    return [
        Link(page, number, target)
        for number, line in prose_lines(page.read_text())
        for target in _LINK.findall(line)
        if target and not _SCHEME.match(target)
    ]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the heading's text (links reduced to their text, code spans to their
    content) lower-cased, every character that is not a letter, digit, space, hyphen or underscore removed,
    and each space turned into a hyphen."""
    text = _INLINE_LINK.sub(r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor on ``page``; a heading met again gets ``-1``, ``-2``… as GitHub numbers them."""
    seen: Counter[str] = Counter()
    found: set[str] = set()
    for _, line in _headings(page.read_text()):
        base = slug(line)
        found.add(f"{base}-{seen[base]}" if seen[base] else base)
        seen[base] += 1
    return found


def _headings(text: str) -> list[tuple[int, str]]:
    """Headings outside code blocks, as written (code spans included, since they are part of the anchor)."""
    raw = text.splitlines()
    return [(number, match.group(1)) for number, _ in prose_lines(text) if (match := _HEADING.match(raw[number - 1]))]


PAGES = documentation_pages()
PAGE_IDS = [str(page.relative_to(ROOT)) for page in PAGES]


def test_the_readme_has_at_most_250_lines() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/ (at most {README_MAX_LINES})"


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_relative_link_names_a_file_that_exists(page: Path) -> None:
    broken = [str(link) for link in relative_links(page) if not link.path.exists()]
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_anchor_names_a_heading_of_the_page_it_links_to(page: Path) -> None:
    links = [link for link in relative_links(page) if link.anchor is not None and link.path.is_file()]
    unknown = [
        f"{link} (headings there: {', '.join(sorted(anchors(link.path)))})"
        for link in links
        if link.path.suffix == ".md" and link.anchor not in anchors(link.path)
    ]
    assert not unknown, "anchors that name no heading:\n" + "\n".join(unknown)


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("The two commands", "the-two-commands"),
        ("The page at `/`", "the-page-at-"),
        ("Style weight: one meaning on any filters", "style-weight-one-meaning-on-any-filters"),
        ("Slow clients: `bench/slow_clients.py`", "slow-clients-benchslow_clientspy"),
        ("2026-12-04 — Quality, and the dial", "2026-12-04--quality-and-the-dial"),
        ("What it does, and [where](engine.md)", "what-it-does-and-where"),
    ],
)
def test_a_headings_anchor_is_spelled_as_github_spells_it(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_a_heading_met_again_gets_a_numbered_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Limits\n\n## Limits\n\n## Limits\n")
    assert anchors(page) == {"limits", "limits-1", "limits-2"}


def test_links_and_headings_in_code_are_not_markdown(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n"
        "See [the API](api.md) and `[not a link](nowhere.md)`.\n"
        "```bash\n"
        "# not a heading\n"
        "echo [not a link](nowhere.md)\n"
        "```\n"
    )
    assert [link.target for link in relative_links(page)] == ["api.md"]
    assert anchors(page) == {"title"}


def test_links_with_a_scheme_are_not_followed(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("[docs](https://example.com/x.md) [mail](mailto:a@example.com) [here](#title)\n")
    assert [link.target for link in relative_links(page)] == ["#title"]
