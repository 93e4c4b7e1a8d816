"""A strict reader of the plain block YAML our own dumper writes, with no PyYAML import: the
agents' CLI reads its task file in a process that must stay near the interpreter's floor.

It understands block mappings of simple keys, block sequences, `[]`/`{}`, one-line plain
scalars (strings, null, booleans, decimal integers, the dumper's timestamps) and quoted
scalars (single-quoted over several lines, double-quoted on one). Anything else (anchors,
aliases, tags, comments, flow collections, block scalars, a key written twice, tabs, other
numbers, deep nesting, too many nodes) is not understood: `parse` returns None and the caller
uses the safe full loader (`safeio.untrusted_yaml`), which refuses or loads it. What it does
return is what that loader would build (tests/test_block_yaml.py holds the two side by side).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

# Far inside the full loader's limits (safeio.regular: 64 levels, 100,000 nodes): what the
# worker writes is a few levels deep and a few hundred nodes; past these the full loader decides.
LEAN_DEPTH = 16
LEAN_NODES = 10_000
LEAN_KEY_CHARS = 128  # the worker's keys are short words; PyYAML refuses simple keys past 1024

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_KEYS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}  # YAML 1.1 words
_NULLS = {"~", "null", "Null", "NULL"}
_BOOLS = {word: value for value, words in ((True, "yes Yes YES true True TRUE on On ON"),
                                           (False, "no No NO false False FALSE off Off OFF"))
          for word in words.split()}
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_STAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})"
                    r"(?:\.([0-9]{1,6}))?(Z|[-+][0-9]{2}:[0-9]{2})?")
# Wider than YAML 1.1's numbers and timestamps (0b, 0x, .inf, .nan are refused before): a
# plain scalar matching neither is a string.
_MAYBE_NUMBER = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])*(?:\.[0-9_]*)?"
                           r"(?:[eE][-+]?[0-9]+)?")
_MAYBE_STAMP = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]| +)[0-9]{1,2}:[0-9]{2}:"
                          r"[0-9]{2}(?:\.[0-9]*)?(?: *(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?")
_PREFIXED = re.compile(r"[-+]?0(?:b[0-1_]+|x[0-9a-f_]+|o[0-7_]+)", re.IGNORECASE)
_INDICATORS = set("-?:,[]{}#&*!|>'\"%@`")
_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f",
            "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85",
            "_": "\xa0", "L": "\u2028", "P": "\u2029"}
_HEX = {"x": 2, "u": 4, "U": 8}
# Whitespace other than the space and the line break: YAML does not strip it as Python's
# str.strip() does, so a text holding any (tabs, no-break or wide spaces...) is in doubt.
_ODD_SPACE = re.compile(r"[^\S \n]")
# What YAML lets a stream hold (PyYAML's reader refuses the rest): we want none of the rest.
# YAML 1.1's other line breaks (NEL, LS, PS) are the full loader's too. Allowed: the line
# break, \x20-\x7e, \xa0-\u2027, \u202a-\ud7ff, \ue000-\ufffd and the other planes; spelled
# here as the few characters refused (a test checks every code point), which compiles ten
# times faster than the many allowed, in a CLI that starts for each call.
_UNPRINTABLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


class _Doubt(Exception):
    """Not what our dumper writes: the full loader decides."""


def parse(raw: bytes) -> object | None:
    """RAW's document as the safe loader builds it, or None when in any doubt."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\n") or _UNPRINTABLE.search(text) or "\ufeff" in text or \
            _ODD_SPACE.search(text):
        return None
    try:
        reader = _Reader(text.split("\n")[:-1])
        value = reader.node(0, 0, 0)
        if reader.at < len(reader.lines):
            raise _Doubt
    except Exception:  # in doubt, or anything it did not foresee: the full loader decides
        return None
    return value


def plain(text: str) -> object:
    """What the one-line plain scalar TEXT loads as, or None when in doubt (`null` too)."""
    try:
        return _plain(text)
    except (_Doubt, ValueError, OverflowError):
        return None


class _Reader:
    """One pass over the lines; `at` is the next line to read."""

    def __init__(self, lines: list[str]) -> None:
        self.lines, self.at, self.nodes = lines, 0, 0

    def count(self) -> None:
        self.nodes += 1
        if self.nodes > LEAN_NODES:
            raise _Doubt

    def indent(self, index: int) -> int:
        line = self.lines[index]
        return len(line) - len(line.lstrip(" "))

    def node(self, index: int, column: int, depth: int) -> object:
        """The block collection whose first line is INDEX, its items at COLUMN."""
        if depth > LEAN_DEPTH or index >= len(self.lines) or self.indent(index) != column:
            raise _Doubt
        if _is_item(self.lines[index][column:]):
            return self.sequence(index, column, depth)
        return self.mapping(index, column, self.lines[index][column:], depth)

    def mapping(self, index: int, column: int, first: str, depth: int) -> dict[str, object]:
        """Keys at COLUMN from line INDEX (whose text from COLUMN on is FIRST)."""
        if depth > LEAN_DEPTH:
            raise _Doubt
        self.count()
        result: dict[str, object] = {}
        text: str | None = first
        while True:
            key, colon, rest = text.partition(":")
            self.count()  # the key is a node too
            if not colon or len(key) > LEAN_KEY_CHARS or not _KEY.fullmatch(key) or \
                    key.lower() in _NOT_KEYS or key in result:
                raise _Doubt
            if rest and not rest.startswith(" "):
                raise _Doubt
            self.at = index + 1
            result[key] = self.value(rest.lstrip(" "), column, depth) if rest.strip() else \
                self.nested(column, depth)
            index = self.at
            if index >= len(self.lines) or self.indent(index) != column or \
                    _is_item(self.lines[index][column:]):
                if index < len(self.lines) and self.indent(index) > column:
                    raise _Doubt
                return result
            text = self.lines[index][column:]

    def nested(self, column: int, depth: int) -> object:
        """A key's value on the lines below it: a deeper block, or a sequence at COLUMN."""
        index = self.at
        if index >= len(self.lines):
            raise _Doubt
        inner = self.indent(index)
        if inner == column and _is_item(self.lines[index][column:]):
            return self.sequence(index, column, depth + 1)
        if inner <= column:
            raise _Doubt  # `key:` alone is null to YAML; our dumper writes `null`
        return self.node(index, inner, depth + 1)

    def sequence(self, index: int, column: int, depth: int) -> list[object]:
        if depth > LEAN_DEPTH:
            raise _Doubt
        self.count()
        items: list[object] = []
        while index < len(self.lines) and self.indent(index) == column and \
                _is_item(self.lines[index][column:]):
            item = self.lines[index][column + 2:]
            if not item or item.startswith(" ") or _is_item(item):
                raise _Doubt
            key, colon, rest = item.partition(":")
            if colon and _KEY.fullmatch(key) and (not rest or rest.startswith(" ")):
                items.append(self.mapping(index, column + 2, item, depth + 1))
            else:
                self.at = index + 1
                items.append(self.value(item, column, depth))
            index = self.at
        if index < len(self.lines) and self.indent(index) > column:
            raise _Doubt
        return items

    def value(self, text: str, column: int, depth: int) -> object:
        """A scalar (or `[]`, `{}`) starting with TEXT; a quoted one may go on below."""
        self.count()
        if text.startswith("'"):
            return self.quoted(text, column)
        if text.startswith('"'):
            return _double(text)
        return _plain(text)

    def quoted(self, text: str, column: int) -> str:
        """A single-quoted scalar, folded as YAML folds it over lines deeper than COLUMN."""
        parts = [text[1:]]
        while _closing(parts[-1]) is None:
            if self.at >= len(self.lines):
                raise _Doubt
            line = self.lines[self.at]
            if line.strip() and self.indent(self.at) <= column:
                raise _Doubt
            parts.append(line)
            self.at += 1
        end = _closing(parts[-1])
        if parts[-1][end + 1:].strip():
            raise _Doubt
        parts[-1] = parts[-1][:end]
        return _fold(parts).replace("''", "'")


def _is_item(text: str) -> bool:
    return text == "-" or text.startswith("- ")


def _closing(text: str) -> int | None:
    """Where the closing quote of a single-quoted scalar is in TEXT (None: not there)."""
    at = 0
    while True:
        at = text.find("'", at)
        if at < 0:
            return None
        if text[at + 1:at + 2] != "'":
            return at
        at += 2


def _fold(parts: list[str]) -> str:
    """Lines of a quoted scalar as one string: a break between text is a space, each empty
    line a newline; spaces around breaks go."""
    if len(parts) == 1:
        return parts[0]
    pieces = [parts[0].rstrip(" ")]
    blank = 0
    for part in parts[1:-1]:
        if not part.strip(" "):
            blank += 1
            continue
        pieces.append(("\n" * blank or " ") + part.strip(" "))
        blank = 0
    last = parts[-1].lstrip(" ")
    pieces.append(("\n" * blank or " ") + last if last or blank else "")
    if not last and not blank:
        raise _Doubt  # a break right before the quote: a trailing space YAML keeps
    return "".join(pieces)


def _double(text: str) -> str:
    """A double-quoted scalar on one line, its escapes decoded."""
    out, at = [], 1
    while at < len(text):
        char = text[at]
        if char == '"':
            if text[at + 1:].strip():
                raise _Doubt
            return "".join(out)
        if char != "\\":
            out.append(char)
            at += 1
            continue
        code = text[at + 1:at + 2]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            at += 2
        elif code in _HEX:
            digits = text[at + 2:at + 2 + _HEX[code]]
            if len(digits) != _HEX[code] or not re.fullmatch(r"[0-9A-Fa-f]+", digits):
                raise _Doubt
            value = int(digits, 16)
            if 0xD800 <= value <= 0xDFFF or value > 0x10FFFF:
                raise _Doubt
            out.append(chr(value))
            at += 2 + _HEX[code]
        else:
            raise _Doubt
    raise _Doubt  # goes on below: folded double quotes are the full loader's


def _plain(text: str) -> object:
    """A one-line plain scalar, resolved as YAML 1.1 (PyYAML's safe loader) resolves it."""
    text = text.rstrip(" ")
    if text in ("[]", "{}"):
        return [] if text == "[]" else {}
    if not text or text[0] in _INDICATORS or ": " in text or " #" in text or \
            text.endswith(":") or text[0] in "<=":
        raise _Doubt
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if text[0] not in "+.0123456789":
        return text
    if text.lstrip("+").startswith(".") or _PREFIXED.fullmatch(text):
        raise _Doubt  # .inf, .nan, .5; 0b, 0x (0o too, to be safe)
    if not _MAYBE_NUMBER.fullmatch(text) and not _MAYBE_STAMP.fullmatch(text):
        return text
    if _INT.fullmatch(text):
        return int(text)
    stamp = _STAMP.fullmatch(text)
    if stamp:
        return _timestamp(stamp)
    raise _Doubt


def _timestamp(stamp: re.Match[str]) -> datetime:
    """The datetime the safe loader builds (microseconds from up to six digits)."""
    year, month, day, hour, minute, second = (int(stamp.group(i)) for i in range(1, 7))
    fraction = int((stamp.group(7) or "0").ljust(6, "0"))
    zone = stamp.group(8)
    tz = None
    if zone == "Z":
        tz = UTC
    elif zone:
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        delta = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-delta if zone[0] == "-" else delta)
    return datetime(year, month, day, hour, minute, second, fraction, tzinfo=tz)
