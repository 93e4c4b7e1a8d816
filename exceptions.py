"""Exception hierarchy: one base so callers can catch everything this worker raises."""


class TemporalWorkerError(Exception):
    """Base of every error raised by this project."""


class ConfigError(TemporalWorkerError):
    """A configuration value is missing or invalid."""


class CredentialError(TemporalWorkerError):
    """TLS credentials could not be obtained (Vault, files, policy)."""


class ActivityRuntimeError(TemporalWorkerError):
    """An activity could not do its job for a reason worth a retry."""


class UnsafePathError(TemporalWorkerError):
    """A path we were about to write is a symlink or in an unsafe directory."""
