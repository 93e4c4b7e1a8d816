"""Workflow definitions registered on the helm-build task queue."""
