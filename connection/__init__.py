"""The Temporal connection: settings from the environment, TLS policy, search attributes."""
