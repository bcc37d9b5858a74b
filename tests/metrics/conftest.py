"""Fixtures of the metrics tests; the record factories live in ``mv_records.py`` next to this file."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

if str(Path(__file__).parent) not in sys.path:  # let the tests import mv_records under any import mode
    sys.path.insert(0, str(Path(__file__).parent))

from mv_records import make_record, make_records, write_samples  # noqa: E402


@pytest.fixture
def record() -> Callable[..., dict[str, Any]]:
    return make_record


@pytest.fixture
def records() -> Callable[..., list[dict[str, Any]]]:
    return make_records


@pytest.fixture
def samples_writer() -> Callable[[Path, Iterable[dict[str, Any]]], Path]:
    return write_samples
