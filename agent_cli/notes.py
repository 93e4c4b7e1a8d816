"""What the CLI says on stderr besides its one-line ending: a fallback taken, Vault left off."""

from __future__ import annotations

import sys


def say_fallback(off: str | None) -> None:
    """Say why HTTP was passed over (OFF), when gRPC carried the call instead."""
    if off is not None:
        print(f"complete_activity: note: {off}; used gRPC", file=sys.stderr)


_WARNED: list[str] = []


def warn_vault(missing: tuple[str, ...]) -> None:
    """Say once that Vault is off because some of its variables are unset."""
    if missing and not _WARNED:
        _WARNED.append("vault")
        print(f"complete_activity: warning: {', '.join(missing)} unset, so Vault mTLS is off "
              f"(it needs all three)", file=sys.stderr)
