"""Which tests are the quick check (`-m unit`): marked by the fixtures they use, so a test that
needs a server can never run, or provision one, in the quick check."""

from __future__ import annotations

import pytest

# Fixtures that start, provision or talk to a server (dev server, cluster, Java test server,
# a worker, pm2, nginx, Jaeger): a test using any of them, even indirectly, is marked `server`.
SERVER_FIXTURES = frozenset({"cli_path", "server", "client", "cluster", "cluster_client",
                             "time_env", "env", "cfg", "worker", "pm2", "proxy",
                             "jaeger_path", "jaeger"})
# Fixtures that need nothing beyond the venv (temporary directories, a log scan).
PURE_FIXTURES = frozenset({"dirs", "no_secrets_in_logs", "listings", "certs"})
# The marks a test may carry explicitly; every test ends with exactly one of them.
KINDS = ("unit", "server", "slow")


def kind_of(item: pytest.Item) -> str:
    """The test's kind: its explicit mark, else `server` when it uses a server fixture."""
    marked = [kind for kind in KINDS if item.get_closest_marker(kind)]
    uses_server = bool(SERVER_FIXTURES & set(getattr(item, "fixturenames", ())))
    if len(marked) > 1 or (marked == ["unit"] and uses_server):
        raise pytest.UsageError(f"{item.nodeid}: marked {' and '.join(marked)}"
                                f"{' but uses a server fixture' if uses_server else ''}")
    if marked:
        return marked[0]
    return "server" if uses_server else "unit"


def mark_kinds(items: list[pytest.Item]) -> None:
    """Give every collected test its one kind, so `-m unit` selects the quick check."""
    for item in items:
        kind = kind_of(item)
        if not item.get_closest_marker(kind):
            item.add_marker(kind)
