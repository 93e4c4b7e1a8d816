"""Interim: workflows/build_pipeline.py still imports `shown` from here; it lives in findings.py."""

from findings import shown

__all__ = ["shown"]
