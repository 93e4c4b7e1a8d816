"""The security agent's findings: triage-output.yml parsed safely, bounded, and rendered as
inert data for agent instructions and operators."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import yaml

from contract import TriageFormatError
from models import TriageOutput
from safeio import untrusted_yaml
from safeio.inert import one_line

MAX_TRIAGE_BYTES = 1024 * 1024
MAX_ITEMS = 1000
FINDING_LIMIT = 500
FINDINGS_BUDGET = 256 * 1024  # bytes of findings in one task file (carried twice, < 1 MiB)
SHOWN_FINDINGS, SHOWN_CHARS = 20, 300  # what a progress answer carries of each list
TRIAGE_KEYS = ("blocks", "flags", "info")  # all three, always: the documented schema
_WRAPPER = re.compile(r"<\s*/?\s*security-findings\s*>", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _render(value: Any) -> str:
    """Any YAML value as one readable line of text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "; ".join(f"{_render(k)}: {text}" for k, v in value.items()
                         if (text := _render(v)))
    if isinstance(value, list):
        return "; ".join(text for v in value if (text := _render(v)))
    return "" if value is None else str(value).strip()


def _place(item: dict[Any, Any]) -> tuple[str, set[str]]:
    """`location`, else `file` with its `line`, as one place, and the keys it used."""
    if text := _render(item.get("location")):
        return text, {"location"}
    where, line = _render(item.get("file")), _render(item.get("line"))
    place = f"{where}:{line}" if where and line else where or (f"line {line}" if line else "")
    return place, {"location", "file", "line"}


def render_finding(item: Any) -> str:
    """One finding as one line, whatever fields it has, e.g. `[high] Hardcoded root
    password: db/init.sql:12`: severity, title, description, place, then every other key.
    Empty when the item says nothing at all."""
    if not isinstance(item, dict):
        return _render(item)
    severity = _render(item.get("severity"))
    place, used = _place(item)
    head = ": ".join(part for part in (_render(item.get("title")),
                                       _render(item.get("description")), place) if part)
    rest = _render({k: v for k, v in item.items()
                    if k not in used and k not in ("severity", "title", "description")})
    text = "; ".join(part for part in (head, rest) if part)
    return f"[{severity}] {text}".strip() if severity else text


def _findings(key: str, items: list[Any]) -> list[str]:
    """Every item of KEY rendered; an item that says nothing is refused, never dropped."""
    texts = []
    for number, item in enumerate(items, start=1):
        text = render_finding(item)
        if not text:
            raise TriageFormatError(f"'{key}' item {number} is empty: every finding must say "
                                    f"what was found (an empty list is written '{key}: []')")
        texts.append(_SURROGATE.sub("\ufffd", text))
    return texts


def _check_keys(data: dict[Any, Any]) -> None:
    """Fail closed: exactly blocks, flags and info, each present (a clean audit says so)."""
    for key in data:
        name = str(key)[:60]
        if key in TRIAGE_KEYS:
            continue
        if isinstance(key, str) and key.strip().lower() in TRIAGE_KEYS:
            raise TriageFormatError(f"key '{name}' must be written '{key.strip().lower()}' "
                                    f"(lower case, no spaces)")
        raise TriageFormatError(f"unknown key '{name}': a triage file has exactly "
                                f"'blocks', 'flags' and 'info'")
    for key in TRIAGE_KEYS:
        if key not in data:
            raise TriageFormatError(f"missing key '{key}': a clean audit still lists "
                                    f"'{key}: []'")


def parse_triage(raw: bytes) -> TriageOutput:
    """Turn the file's bytes into TriageOutput or raise TriageFormatError with one clear line."""
    if len(raw) > MAX_TRIAGE_BYTES:
        raise TriageFormatError(f"triage file is larger than {MAX_TRIAGE_BYTES} bytes")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TriageFormatError("triage file is not UTF-8 text") from None
    try:
        data = untrusted_yaml.parse(raw, "triage file")
    except untrusted_yaml.InputRefused as err:
        raise TriageFormatError(str(err)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise TriageFormatError(f"triage file is not valid YAML{where}") from None
    if data is None:
        raise TriageFormatError("triage file is empty: a clean audit must still list "
                                "'blocks: []', 'flags: []' and 'info: []'")
    if not isinstance(data, dict):
        raise TriageFormatError(
            f"triage file top level must be a mapping, got {type(data).__name__}"
        )
    _check_keys(data)
    result: dict[str, list[str]] = {}
    for key in TRIAGE_KEYS:
        items = data[key]
        if not isinstance(items, list):
            shown = "nothing" if items is None else type(items).__name__
            raise TriageFormatError(f"'{key}' must be a list (write '{key}: []' for none), "
                                    f"got {shown}")
        if len(items) > MAX_ITEMS:
            raise TriageFormatError(f"'{key}' has more than {MAX_ITEMS} items")
        result[key] = _findings(key, items)
    if sum(len(text) for texts in result.values() for text in texts) > MAX_TRIAGE_BYTES:
        raise TriageFormatError(f"triage findings exceed {MAX_TRIAGE_BYTES} characters")
    return TriageOutput(**result)


def neutralise(finding: str) -> str:
    """One line, no wrapper tags, at most FINDING_LIMIT characters. Invisible characters (NUL,
    zero-width, other format characters) go first, so none can hide a tag from one pass."""
    finding = "".join(ch for ch in finding if ch.isprintable() or ch.isspace()
                      or unicodedata.category(ch) not in ("Cc", "Cf"))
    line = _SPACE.sub(" ", _SURROGATE.sub("\ufffd", finding)).strip()
    previous = None
    while previous != line:  # removing one tag must not assemble another
        previous = line
        line = _WRAPPER.sub("[security-findings tag removed]", line)
    line = "".join(ch if ch.isprintable() else " " for ch in line)
    return line[:FINDING_LIMIT]


def bounded_findings(findings: list[str]) -> tuple[list[str], int]:
    """Neutralised findings within FINDINGS_BUDGET UTF-8 bytes (a task file carries them twice
    and must stay readable by our own reader), and how many were cut."""
    kept: list[str] = []
    used = 0
    for finding in findings:
        line = neutralise(finding)
        size = len(line.encode("utf-8")) + 4
        if used + size > FINDINGS_BUDGET:
            break
        kept.append(line)
        used += size
    return kept, len(findings) - len(kept)


def wrap_findings(findings: list[str]) -> str:
    """The data block handed to the fixing agent."""
    lines = [f"- {neutralise(item)}" for item in findings]
    return "\n".join(["<security-findings>", *lines, "</security-findings>"])


def shown(findings: list[str]) -> list[str]:
    """The first SHOWN_FINDINGS findings, each one inert line of at most SHOWN_CHARS: what
    an operator's views carry (the counts beside them say how many there are)."""
    return [one_line(neutralise(text), SHOWN_CHARS) for text in findings[:SHOWN_FINDINGS]]
