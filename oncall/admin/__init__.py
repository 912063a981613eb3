"""The on-call admin: people (contact methods, rules, profile, message log), schedules
(rotations, timeline, overrides) and escalations. Importing the modules registers their admins."""

from oncall.admin import escalation, people, schedules  # noqa: F401 (registers the admins)
