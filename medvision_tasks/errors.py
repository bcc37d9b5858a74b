"""Error types, one per layer; each subclasses a builtin so callers can catch by kind."""

from __future__ import annotations


class PlanError(ValueError):
    """A data root, plan file, plan version or plan field is missing or malformed."""


class VolumeError(OSError):
    """A NIfTI volume cannot be read, has the wrong orientation, or a slice index is out of range."""


class SettingsError(ValueError):
    """An environment value, switch or geometry string is invalid."""
