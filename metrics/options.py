"""Option words shared by every layer: the one boolean vocabulary, the one "did you mean" helper, and the
messages and argparse types for a value outside a fixed set of choices.

Pure Python, at the bottom of the import graph (medvision_tasks and medvision_adapters import it), so each
layer raises its own error type around the same rule.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Iterable
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


def invalid_value_message(option: str, value: str, valid: Iterable[str]) -> str:
    """``--family 'tll' is not valid; valid: detection, tl, ad; closest: 'tl'`` (closest part only when any)."""
    choices = list(valid)
    near = closest_match(value, choices, cutoff=0.5)
    hint = f"; closest: {near!r}" if near else ""
    return f"{option} {value!r} is not valid; valid: {', '.join(choices)}{hint}"


def choice(option: str, valid: Iterable[str]) -> Callable[[str], str]:
    """argparse ``type=`` accepting only ``valid`` values, with :func:`invalid_value_message` otherwise."""
    choices = tuple(valid)

    def check(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(invalid_value_message(option, text, choices))
        return text

    check.__name__ = option.lstrip("-").replace("-", "_")
    return check


def metavar(valid: Iterable[str]) -> str:
    """``{a,b,c}``, the metavar argparse shows for ``choices``."""
    return "{" + ",".join(valid) + "}"
