"""Messages for a value outside a fixed set of choices: the value, the valid choices and the closest match."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Iterable


def closest(value: str, valid: Iterable[str]) -> str | None:
    """The valid choice closest to ``value`` (difflib ratio >= 0.5), or ``None``."""
    found = difflib.get_close_matches(value, list(valid), n=1, cutoff=0.5)
    return found[0] if found else None


def invalid_value_message(option: str, value: str, valid: Iterable[str]) -> str:
    """``--family 'tll' is not valid; valid: detection, tl, ad; closest: 'tl'`` (closest part only when any)."""
    choices = list(valid)
    near = closest(value, choices)
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
