"""Every relative link in the README, AGENTS.md and docs/ leads somewhere: the docs are read
page by page, so a moved section must not leave a reader at a dead link or a missing heading."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def pages() -> list[Path]:
    """The documents a reader walks: the front door, the agents' page, the guides."""
    return [ROOT / "README.md", ROOT / "AGENTS.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """Markdown without code, where a bracket is an example and not a link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = CODE_SPAN.sub(lambda m: m.group(0).strip("`"), heading).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a page offers, numbered as GitHub numbers repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """The relative links of one page whose file, or heading, does not exist."""
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{page.name}: {target} (no such heading)")
    return broken


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file_and_heading(page: Path) -> None:
    assert broken_links(page) == []


def test_the_checker_finds_a_missing_file_a_missing_heading_and_ignores_code(
        tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Exit codes (`exceptions.Exit`)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#exit-codes-exceptionsexit) [self](#page) [web](https://x.y/z)\n"
        "[gone](missing.md) [no heading](other.md#nowhere) ![img](none.png)\n"
        "`[code](nothere.md)`\n\n```\n[fenced](nothere.md)\n```\n")
    assert broken_links(page) == ["page.md: missing.md (no such file)",
                                  "page.md: other.md#nowhere (no such heading)",
                                  "page.md: none.png (no such file)"]


def test_the_readme_links_every_guide_in_docs() -> None:
    readme = prose((ROOT / "README.md").read_text())
    linked = {Path(target.partition("#")[0]).name for target in LINK.findall(readme)}
    guides = {page.name for page in (ROOT / "docs").glob("*.md")}
    assert guides - linked == set()


def test_every_test_the_docs_name_exists():
    """A doc that says "held by test_x.py::name" must name a test that is there (a rename
    would otherwise leave the promise pointing at nothing); `::name` after a file on the same
    line is that file's."""
    import re

    named = re.compile(r"(test_\w+\.py)?::(\w+)")
    missing = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in page.read_text().splitlines():
            current = None
            for module, test in named.findall(line):
                current = module or current
                if current is None:
                    continue
                source = ROOT / "tests" / current
                defined = source.is_file() and re.search(
                    rf"^(async )?def {re.escape(test)}\b", source.read_text(), re.M)
                if not defined:
                    missing.append(f"{page.name}: {current}::{test}")
    assert not missing, missing
