"""Agent-written text made inert for whoever reads it: a terminal, Markdown, one line."""

from __future__ import annotations

import re
import unicodedata

# C0/C1 controls, DEL, line/paragraph separators, lone surrogates, bidi and other format
# characters: anything that can move a cursor, start an escape sequence or hide text.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SPACE = re.compile(r"\s+")
# One line never starts a block, so only inline Markdown (and HTML) needs escaping.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#!|~])")


def _visible(ch: str) -> str:
    if _UNSAFE.match(ch) or unicodedata.category(ch) == "Cf":
        return "\ufffd" if ch not in "\t\n\r" else " "
    return ch


def one_line(text: object, limit: int = 500) -> str:
    """TEXT as one printable line (controls replaced with U+FFFD, whitespace collapsed),
    at most LIMIT characters (an ellipsis marks a cut)."""
    line = _SPACE.sub(" ", "".join(_visible(ch) for ch in str(text))).strip()
    return line if len(line) <= limit else line[: max(limit - 1, 0)] + "…"


def markdown(text: object, limit: int = 500) -> str:
    """TEXT as one inert line of Markdown: every character Markdown could act on escaped, so
    headings, links, images, HTML and comments show as the characters they are."""
    return _MARKDOWN.sub(r"\\\1", one_line(text, limit))


def code(text: object, limit: int = 500) -> str:
    """TEXT as one inline code span: shown as the characters it is wherever Markdown is
    rendered, and readable where it is not (a backtick inside becomes a look-alike)."""
    return "`" + one_line(text, limit).replace("`", "\u02cb") + "`"
