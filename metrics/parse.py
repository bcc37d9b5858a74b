"""Answer parsing: turn a model response into k numbers (docs/reference.md §4).

Two rules exist:

* ``last_k`` (v1): every match of ``-?\\d+\\.?\\d*`` in the whole response; the last k matches are the answer.
* ``answer_tag`` (later upstream): the same rule applied only to the content of the first
  ``<answer>...</answer>`` pair (DOTALL, case-sensitive); no complete pair is a failure.

Values are rounded to float32 (``numpy.float32(text)``) and returned as Python floats. A parse failure is
data, not an exception: it returns ``(None, False)``.
"""

from __future__ import annotations

import re

import numpy as np

from .options import did_you_mean

NUMBER_PATTERN = re.compile(r"-?\d+\.?\d*")
ANSWER_TAG_PATTERN = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
PARSE_MODES: tuple[str, ...] = ("last_k", "answer_tag")
OVERFLOW_MIN_CHARS = 39  # a token of 38 characters is below 1e38, under float32's maximum (about 3.4e38)


def check_parse_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`PARSE_MODES`.

    Raises:
        ValueError: for any other value; the message lists the valid modes and the closest one.
    """
    if mode in PARSE_MODES:
        return mode
    hint = did_you_mean(mode, PARSE_MODES)
    raise ValueError(f"unknown parse mode {mode!r}; valid modes: {', '.join(PARSE_MODES)}.{hint}")


def _float32(token: str) -> float:
    """``float(numpy.float32(token))`` as v1; a number of 39+ digits overflows to inf, kept as inf."""
    if len(token) < OVERFLOW_MIN_CHARS:  # below 1e38 < float32 max: no overflow possible, no errstate needed
        return float(np.float32(token))
    with np.errstate(over="ignore"):
        return float(np.float32(token))


def _last_k_numbers(text: str, k: int) -> list[float] | None:
    matches = NUMBER_PATTERN.findall(text)
    if len(matches) < k:
        return None
    try:
        values = [_float32(token) for token in matches[-k:]]
    except (ValueError, OverflowError):
        return None
    return values if len(values) == k else None


def parse(response: str | None, k: int, mode: str = "last_k") -> tuple[list[float] | None, bool]:
    """Parse ``k`` numbers out of ``response``.

    Args:
        response: raw model output. ``None`` or an empty string is a failure.
        k: numbers expected: 4 for detection, 2 for T/L, 1 for A/D.
        mode: ``"last_k"`` (v1, §4.1) or ``"answer_tag"`` (§4.2).

    Returns:
        ``(values, True)`` with the last k numeric tokens as float32-rounded Python floats, in order, or
        ``(None, False)`` on failure. There is no range, unit or sign check: ``"-5"`` is a success.

    Raises:
        ValueError: unknown ``mode`` or ``k < 1``.
    """
    check_parse_mode(mode)
    if k < 1:
        raise ValueError(f"k must be a positive number of values to parse, got {k!r}")
    if not isinstance(response, str) or not response:
        return None, False
    text = response
    if mode == "answer_tag":
        match = ANSWER_TAG_PATTERN.search(response)
        if match is None:
            return None, False
        text = match.group(1)
    values = _last_k_numbers(text, k)
    return values, values is not None
