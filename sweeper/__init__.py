"""The reconciler between the shared task directory and Temporal, split by what it repairs."""

from sweeper.reach import outage
from sweeper.reconciler import Sweeper

__all__ = ["Sweeper", "outage"]
