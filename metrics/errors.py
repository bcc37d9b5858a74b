"""Error type of the metrics and leaderboard layer."""

from __future__ import annotations


class RecordError(ValueError):
    """A per-sample record (``mv_record``) or a samples file is missing, malformed, duplicated or refused.

    Messages name the file and line or the field, what was found, and the flag or step that fixes it.
    """
