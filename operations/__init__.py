"""The operator's commands behind buildctl.py, one room each, and how they are shown."""
