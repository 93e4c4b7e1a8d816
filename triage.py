"""Parse triage-output.yml safely and render findings as inert data for agent instructions."""

from __future__ import annotations

import re
from typing import Any

import yaml

from models import TriageOutput

MAX_TRIAGE_BYTES = 1024 * 1024
MAX_ITEMS = 1000
MAX_DEPTH = 8
FINDING_LIMIT = 500
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_WRAPPER = re.compile(r"<\s*/?\s*security-findings\s*>", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class TriageFormatError(ValueError):
    """The triage file cannot be understood; retrying will not help."""


def _check_nesting(text: str) -> None:
    """Refuse absurdly nested flow collections before the parser recurses into them."""
    depth = 0
    for char in text:
        if char in "[{":
            depth += 1
            if depth > 64:
                raise TriageFormatError("triage file is nested too deeply")
        elif char in "]}":
            depth = max(0, depth - 1)


def _describe(item: Any, where: str) -> str | None:
    if item is None:
        return None
    if isinstance(item, str):
        return item.strip() or None
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return str(item)
    if isinstance(item, dict) and "description" in item:
        value = item["description"]
        if isinstance(value, str):
            return value.strip() or None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise TriageFormatError(
        f"{where}: each item must be a string or a mapping with a text 'description'"
    )


def parse_triage(raw: bytes) -> TriageOutput:
    """Turn the file's bytes into TriageOutput or raise TriageFormatError with one clear line."""
    if len(raw) > MAX_TRIAGE_BYTES:
        raise TriageFormatError(f"triage file is larger than {MAX_TRIAGE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TriageFormatError("triage file is not UTF-8 text") from None
    _check_nesting(text)
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise TriageFormatError(f"triage file is not valid YAML{where}") from None
    except RecursionError:
        raise TriageFormatError("triage file is nested too deeply") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TriageFormatError(
            f"triage file top level must be a mapping, got {type(data).__name__}"
        )
    result: dict[str, list[str]] = {}
    for key in ("blocks", "flags", "info"):
        items = data.get(key) or []
        if not isinstance(items, list):
            raise TriageFormatError(f"'{key}' must be a list, got {type(items).__name__}")
        if len(items) > MAX_ITEMS:
            raise TriageFormatError(f"'{key}' has more than {MAX_ITEMS} items")
        texts = (_describe(item, f"{key}[{i}]") for i, item in enumerate(items))
        result[key] = [_SURROGATE.sub("\ufffd", text) for text in texts if text]
    return TriageOutput(**result)


def neutralise(finding: str) -> str:
    """One line, no wrapper tags, at most FINDING_LIMIT characters."""
    line = _SPACE.sub(" ", _SURROGATE.sub("\ufffd", finding)).strip()
    previous = None
    while previous != line:  # removing one tag must not assemble another
        previous = line
        line = _WRAPPER.sub("[security-findings tag removed]", line)
    line = "".join(ch if ch.isprintable() else " " for ch in line)
    return line[:FINDING_LIMIT]


def wrap_findings(findings: list[str]) -> str:
    """The data block handed to the fixing agent."""
    lines = [f"- {neutralise(item)}" for item in findings]
    return "\n".join(["<security-findings>", *lines, "</security-findings>"])
