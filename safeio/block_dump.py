"""A strict emitter of the plain block YAML `safeio.block_yaml` reads, with no PyYAML import:
the agents' CLI rewrites its own task file in a process kept near the interpreter's floor.

It writes mappings of simple keys, sequences (not directly in sequences), strings, integers,
booleans, null and timestamps, in our dumper's layout; a string is plain when it reads back
as itself, else double-quoted on one line. Whatever it is unsure of gives None (the caller
uses PyYAML's dumper), and so does a result the lean reader does not read back as exactly the
document given: that reader returns only what the safe full loader builds.
"""

from __future__ import annotations

from datetime import datetime

from safeio import block_yaml

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


class _Unsure(Exception):
    """A value the emitter does not write: PyYAML's dumper does."""


def dump(document: dict[str, object]) -> bytes | None:
    """DOCUMENT as block YAML that loads back exactly as DOCUMENT, or None when unsure."""
    lines: list[str] = []
    try:
        if not isinstance(document, dict) or not document:
            raise _Unsure
        _mapping(document, 0, lines, 0)
        data = ("\n".join(lines) + "\n").encode("utf-8")
    except (_Unsure, UnicodeEncodeError, RecursionError):
        return None
    return data if _same(block_yaml.parse(data), document) else None


def _mapping(mapping: dict[object, object], column: int, lines: list[str], depth: int) -> None:
    if depth > block_yaml.LEAN_DEPTH:  # the reader would not read it back: unsure now
        raise _Unsure
    for key, value in mapping.items():
        if not isinstance(key, str) or block_yaml.plain(key) != key or \
                not key.isidentifier() or not key.isascii():
            raise _Unsure
        head = f"{' ' * column}{key}:"
        if isinstance(value, dict) and value:
            lines.append(head)
            _mapping(value, column + 2, lines, depth + 1)
        elif isinstance(value, list) and value:
            lines.append(head)
            _sequence(value, column, lines, depth + 1)
        else:
            lines.append(f"{head} {_scalar(value)}")


def _sequence(items: list[object], column: int, lines: list[str], depth: int) -> None:
    for item in items:
        if isinstance(item, list) and item:
            raise _Unsure  # `- - x`: the lean reader leaves it to the full loader
        if isinstance(item, dict) and item:
            start = len(lines)
            _mapping(item, column + 2, lines, depth + 1)
            lines[start] = f"{' ' * column}- {lines[start][column + 2:]}"
        else:
            lines.append(f"{' ' * column}- {_scalar(item)}")


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is str:
        return _string(value)
    if type(value) is datetime:
        return value.isoformat(" ")
    if type(value) in (list, dict) and not value:
        return "[]" if type(value) is list else "{}"
    raise _Unsure


def _string(text: str) -> str:
    """Plain when it reads back as itself on one line, else double-quoted with escapes."""
    if text and text == text.strip() and text.isprintable() and block_yaml.plain(text) == text:
        return text
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif _printable(char):
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return f'"{"".join(out)}"'


def _printable(char: str) -> bool:
    """What a YAML stream may hold as it is (not a break: NEL, LS and PS are escaped too)."""
    code = ord(char)
    return (0x20 <= code <= 0x7E or 0xA0 <= code <= 0x2027 or 0x202A <= code <= 0xD7FF
            or (0xE000 <= code <= 0xFFFD and code != 0xFEFF) or 0x10000 <= code <= 0x10FFFF)


def _same(read: object, given: object) -> bool:
    """READ is GIVEN: same types all the way down, same key order, same clock offsets."""
    if type(read) is not type(given):
        return False
    if isinstance(given, dict) and isinstance(read, dict):
        return list(read) == list(given) and all(_same(read[k], given[k]) for k in given)
    if isinstance(given, list) and isinstance(read, list):
        return len(read) == len(given) and all(map(_same, read, given))
    if isinstance(given, datetime) and isinstance(read, datetime):
        return read == given and read.utcoffset() == given.utcoffset() and \
            (read.tzinfo is None) == (given.tzinfo is None)
    return read == given
