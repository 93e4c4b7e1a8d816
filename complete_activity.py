#!/usr/bin/env python3
"""The agents' CLI: resume a suspended stage with success or failure (never prints the token).
Its code is the agent_cli package: Python compiles a script at every run, a module once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bootstrap

    if sys.argv[1:2] not in (["-h"], ["--help"]):  # the usage needs no packages
        bootstrap.ensure_dependencies("complete_activity", __file__)
    bootstrap.lighten_sdk_import()
    from agent_cli.main import main

    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: the gRPC core can abort while finalizing
