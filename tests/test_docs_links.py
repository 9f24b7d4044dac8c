"""The documentation stands alone: every relative link in the repository's Markdown resolves.

Every ``*.md`` of the repository (README.md, docs/, each distribution's README, ...; not
``.tox``, ``.git``, virtual environments or build output) is read, code blocks and code
spans masked, and each inline link, image and reference definition that is not a URL
checked: the file or directory must exist inside the repository, and a ``#anchor`` into
a Markdown file must name one of its headings (GitHub's slugs). No doc may point at the
workspace outside the repository (``../shared``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Directories never searched: build output and other tools' trees.
SKIP_DIRS = {"__pycache__", "build", "dist", "node_modules"}
#: Names of places outside the repository that a doc must not send its reader to.
OUTSIDE = ("../shared", "shared/seed")

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[`~]*[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>\n]*>|[^\s()]+)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>\n]*>|\S+)", re.M)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M)
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)=[\"']([^\"']+)[\"']", re.I)
URL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")


def markdown_files() -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and d not in SKIP_DIRS and not d.endswith(".egg-info")
            and not (here / d / "pyvenv.cfg").exists()  # a virtual environment, whatever its name
        )
        found.extend(here / f for f in sorted(filenames) if f.endswith(".md"))
    return found


def _mask(match: re.Match) -> str:
    """Blank out a code block or span, keeping its newlines (line numbers stay right)."""
    return re.sub(r"[^\n]", " ", match.group(0))


def prose(text: str) -> str:
    """The text without its fenced code blocks and code spans, same length and lines."""
    return CODE_SPAN.sub(_mask, FENCE.sub(_mask, text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lower case, punctuation dropped,
    each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    result = set(HTML_ANCHOR.findall(text))
    for match in HEADING.finditer(FENCE.sub(_mask, text)):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition."""
    masked = prose(text)
    found = []
    for pattern in (INLINE_LINK, REFERENCE):
        for match in pattern.finditer(masked):
            target = match.group(1).strip("<>")
            found.append((masked.count("\n", 0, match.start()) + 1, target))
    return sorted(found)


def problems(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    out = []
    for line, target in links(text):
        if URL.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        if path_part:
            base = ROOT if path_part.startswith("/") else doc.parent
            resolved = (base / path_part.lstrip("/")).resolve()
        else:
            resolved = doc
        where = f"{doc.relative_to(ROOT)}:{line}: {target}"
        if not resolved.is_relative_to(ROOT):
            out.append(f"{where}: points outside the repository")
            continue
        if not resolved.exists():
            out.append(f"{where}: no such file")
            continue
        if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text(encoding="utf-8")):
            out.append(f"{where}: no heading with the anchor #{anchor} in {resolved.relative_to(ROOT)}")
    return out


DOCS = markdown_files()


def test_the_docs_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in DOCS}
    assert {"README.md", "docs/architecture.md", "docs/concepts.md"} <= names
    assert not any(name.startswith((".tox/", ".git/", ".venv/")) for name in names)


@pytest.mark.parametrize("doc", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_relative_links_resolve(doc):
    assert problems(doc) == []


@pytest.mark.parametrize("doc", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_no_doc_points_outside_the_repository(doc):
    text = doc.read_text(encoding="utf-8")
    named = [f"{doc.relative_to(ROOT)}:{text.count(chr(10), 0, text.index(name)) + 1}: {name}"
             for name in OUTSIDE if name in text]
    assert named == []


def test_the_checker_itself(tmp_path, monkeypatch):
    """Links in code are ignored; a missing file, a missing anchor and an escape are found."""
    tmp_path = tmp_path.resolve()
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("# Edge- versus level-triggered, and `more`\n## Twice\n## Twice\n")
    doc = tmp_path / "docs" / "a.md"
    doc.write_text(
        "[ok](b.md#edge--versus-level-triggered-and-more) [ok](b.md#twice-1) [ok](#top)\n"
        "# Top\n"
        "`[code](nowhere.md)`\n"
        "```\n[fenced](nowhere.md)\n```\n"
        "[url](https://example.com/x.md) ![missing](pics/x.png)\n"
        "[bad anchor](b.md#nope) [escape](../../etc/passwd)\n"
        "[wrapped\ntext](b.md)\n"
        "[ref]: ../docs/gone.md\n"
    )
    assert problems(doc) == [
        "docs/a.md:7: pics/x.png: no such file",
        "docs/a.md:8: ../../etc/passwd: points outside the repository",
        "docs/a.md:8: b.md#nope: no heading with the anchor #nope in docs/b.md",
        "docs/a.md:11: ../docs/gone.md: no such file",
    ]
