"""docs/reference.md §4: every parsing vector of §4.1 and §4.2."""

from __future__ import annotations

import numpy as np
import pytest
from medvision_metrics.parse import PARSE_MODES, parse


def f32(*values: float) -> list[float]:
    """Expected values: float32-rounded, as Python floats."""
    return [float(np.float32(v)) for v in values]


LAST_K_VECTORS = [
    # (response, k, expected values or None for a failure)
    ("…the kidney lies here. Answer: 0.40, 0.60, 0.62, 0.80", 4, f32(0.40, 0.60, 0.62, 0.80)),
    ("12.5 mm x 8.2 mm (slice 42)", 2, f32(8.2, 42)),  # wrong answer, not a failure
    ("T2 image: 0.1,0.2,0.3", 4, f32(2, 0.1, 0.2, 0.3)),  # "T2" counts
    (".5", 1, [5.0]),
    ("1e-3", 1, [-3.0]),
    ("1,234.5", 1, [234.5]),
    ("x=0.3, y=.25", 2, f32(0.3, 25)),
    ("5.", 1, [5.0]),
    ("-5", 1, [-5.0]),  # negative values are successes
    ("no numbers", 1, None),
]


@pytest.mark.parametrize(("response", "k", "expected"), LAST_K_VECTORS)
def test_last_k_vectors(response: str, k: int, expected: list[float] | None) -> None:
    values, success = parse(response, k, "last_k")
    assert success is (expected is not None)
    assert values == expected


def test_last_k_is_the_default_mode() -> None:
    assert parse("a 1 b 2", 2) == ([1.0, 2.0], True)


def test_values_are_float32_rounded_python_floats() -> None:
    values, _ = parse("0.1", 1)
    assert values is not None
    assert type(values[0]) is float
    assert values[0] == float(np.float32(0.1)) != 0.1


def test_fewer_than_k_numbers_fail() -> None:
    assert parse("0.1, 0.2, 0.3", 4) == (None, False)


def test_more_than_k_numbers_take_the_last_k_in_order() -> None:
    assert parse("1 2 3 4 5 6", 4) == ([3.0, 4.0, 5.0, 6.0], True)


def test_no_range_check_pixel_answers_succeed() -> None:
    assert parse("120, 300, 250, 410", 4) == ([120.0, 300.0, 250.0, 410.0], True)


@pytest.mark.parametrize("response", [None, ""])
def test_none_or_empty_response_fails(response: str | None) -> None:
    assert parse(response, 1) == (None, False)
    assert parse(response, 1, "answer_tag") == (None, False)


def test_float32_overflow_gives_inf() -> None:
    values, success = parse("9" * 40, 1)
    assert success
    assert values == [float("inf")]


# §4.2 answer_tag
def test_answer_tag_uses_only_the_tag_content() -> None:
    response = "<think>… 0.2 …</think><answer>(24.13, 11.07)</answer>"
    assert parse(response, 2, "answer_tag") == (f32(24.13, 11.07), True)


def test_answer_tag_four_numbers() -> None:
    assert parse("<answer>0.31,0.42,0.55,0.68</answer>", 4, "answer_tag") == (
        f32(0.31, 0.42, 0.55, 0.68),
        True,
    )


def test_answer_tag_without_tag_fails() -> None:
    assert parse("The answer is 3.4", 1, "answer_tag") == (None, False)


def test_answer_tag_cut_off_before_closing_tag_fails() -> None:
    assert parse("<think>1 2</think><answer>3.4, 5", 1, "answer_tag") == (None, False)


def test_answer_tag_takes_the_first_pair_and_spans_lines() -> None:
    response = "<answer>\n1.5\n</answer> later <answer>9</answer>"
    assert parse(response, 1, "answer_tag") == ([1.5], True)


def test_answer_tag_is_case_sensitive() -> None:
    assert parse("<ANSWER>2</ANSWER>", 1, "answer_tag") == (None, False)


def test_answer_tag_with_too_few_numbers_inside_fails() -> None:
    assert parse("0.1 0.2 0.3 <answer>0.4</answer>", 4, "answer_tag") == (None, False)


def test_unknown_mode_names_the_valid_modes() -> None:
    with pytest.raises(ValueError, match="valid modes: last_k, answer_tag.*Did you mean 'last_k'"):
        parse("1", 1, "lastk")
    assert PARSE_MODES == ("last_k", "answer_tag")


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be a positive"):
        parse("1", 0)
