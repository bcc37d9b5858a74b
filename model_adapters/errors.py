"""Adapter-layer error type."""

from __future__ import annotations


class AdapterConfigError(ValueError):
    """Unknown or invalid model arguments, or a missing third-party repository or input file."""
