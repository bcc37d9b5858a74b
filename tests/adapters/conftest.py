"""Fixtures of the adapter tests: tiny random-weight checkpoints, built once per session on first use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Callable[[str], Path]:
    """`tiny_checkpoint(family)` -> folder of a tiny checkpoint (qwen2_5_vl, gemma3, llava_onevision, mllama)."""
    from tiny_vlms import BUILDERS

    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = BUILDERS[family](tmp_path_factory.mktemp(f"tiny-{family}"))
        return built[family]

    return get
