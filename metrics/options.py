"""Option words shared by every layer: the one boolean vocabulary and the one "did you mean" helper.

Pure Python, at the bottom of the import graph (medvision_tasks and medvision_adapters import it), so each
layer raises its own error type around the same rule.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

TRUE_WORDS: tuple[str, ...] = ("1", "true", "yes", "on")
FALSE_WORDS: tuple[str, ...] = ("0", "false", "no", "off")


def bool_word(value: Any) -> bool | None:
    """A switch value as bool: bools, the integers 0/1, or `TRUE_WORDS`/`FALSE_WORDS` in any case and
    surrounding white space; None for anything else (the caller raises its own error)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
    return None


def closest_match(value: Any, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The valid spelling closest to `value` (difflib ratio >= `cutoff`), or None."""
    matches = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=cutoff)
    return matches[0] if matches else None


def did_you_mean(value: Any, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """`" Did you mean 'x'?"` for the closest valid spelling, or "" when none is close."""
    close = closest_match(value, choices, cutoff)
    return f" Did you mean {close!r}?" if close else ""
