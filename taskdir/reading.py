"""Reading one task file. The agents' CLI reads its own file in a process kept near the
interpreter's floor: the file our dumper wrote is read without PyYAML (`safeio.block_yaml`),
and anything that reader does not fully understand goes to the safe full loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safeio import block_yaml
from safeio.regular import read_regular

SOURCE_AGENT = "temporal-worker"
MAX_TASK_FILE_BYTES = 1024 * 1024


def load(path: Path, *, lean: bool = False) -> dict[str, Any]:
    """Parse one task file safely; ValueError (InputRefused too) when it is not a mapping, a
    yaml.YAMLError when it is not YAML. LEAN: try the PyYAML-free reader first."""
    raw = read_regular(path, MAX_TASK_FILE_BYTES)
    data = block_yaml.parse(raw) if lean else None
    if data is None:
        from safeio import untrusted_yaml

        data = untrusted_yaml.parse(raw, path.name)
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is not a YAML mapping")
    return data


def offers(document: dict[str, Any]) -> int:
    """How often the worker wrote this stage's file (each offer carries a new token): more
    than one means an older token may still be around."""
    history = document.get("history")
    entries = history if isinstance(history, list) else []
    return sum(1 for entry in entries if isinstance(entry, dict)
               and entry.get("actor") == SOURCE_AGENT
               and entry.get("status") in ("submitted", "parked"))
