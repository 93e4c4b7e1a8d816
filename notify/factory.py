"""Build the NotifierGroup the config asks for."""

from __future__ import annotations

from config import WorkerConfig
from notify.base import Notifier, NotifierGroup


def build_notifiers(config: WorkerConfig) -> NotifierGroup:
    backends: list[Notifier] = []
    for name in config.notifiers:
        if name == "script":
            from notify.script import ScriptNotifier

            backends.append(ScriptNotifier(config.send_matrix_script, config.matrix_room))
        elif name == "ntfy" and config.ntfy_url:
            from notify.ntfy import NtfyNotifier

            backends.append(NtfyNotifier(config.ntfy_url))
        elif name == "matrix" and config.matrix_access_token_file is not None:
            from notify.matrix import MatrixNotifier

            backends.append(MatrixNotifier(config.matrix_homeserver, config.matrix_room_id,
                                           config.matrix_access_token_file))
    return NotifierGroup(backends)
