"""Interim: workflows/dispatching.py still imports SettingsActivities from here; it lives in
activities/stage_settings.py."""

from activities.stage_settings import SettingsActivities

__all__ = ["SettingsActivities"]
