"""The on-call admin: people (contact methods, rules, profile, message log) and schedules
(rotations, timeline, overrides). Importing the modules registers their admins."""

from oncall.admin import people, schedules  # noqa: F401 (registers the admins)
