"""Every error this project raises, and the one table of exit codes its programs use."""

from enum import IntEnum


class Exit(IntEnum):
    """Exit codes of worker.py, complete_activity.py and buildctl.py (one table)."""

    OK = 0
    ERROR = 1  # anything unexpected
    USAGE = 2  # bad arguments, an unreadable task or plan file
    INVALID = 3  # invalid input: a bad token, a build name, a plan
    NOT_FOUND = 4  # no such workflow or activity (already completed, cancelled, ...)
    UNREACHABLE = 5  # Temporal cannot be reached
    CONFIG = 6  # configuration, credentials, TLS
    REFUSED = 7  # refused: an output that cannot be sent, a decision that is not due
    STOP = 8  # agents' heartbeat: this stage was cancelled, stop working on it


class ExitError(Exception):
    """A CLI's ending: one line for the person at the terminal, and its exit code. Not a
    TemporalWorkerError, so no handler of the project's errors takes it for one."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class TemporalWorkerError(Exception):
    """Base of every error raised by this project."""


class ConfigError(TemporalWorkerError):
    """A configuration value is missing or invalid."""


class CredentialError(TemporalWorkerError):
    """TLS credentials could not be obtained (Vault, files, policy)."""


class TemporalUnreachable(TemporalWorkerError):
    """Connecting to the Temporal frontend failed."""


class ActivityRuntimeError(TemporalWorkerError):
    """An activity could not do its job: input we refuse, or an unsafe path."""


class UnsafePathError(ActivityRuntimeError):
    """A path we were about to write is a symlink or in an unsafe directory."""
