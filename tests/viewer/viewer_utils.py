"""Helpers of the viewer tests."""

from __future__ import annotations

import json
from pathlib import Path


def read_samples(folder: Path) -> list[dict]:
    """Every samples line (as written by lmms-eval) under a folder."""
    out = []
    for path in sorted(folder.rglob("*_samples_*.jsonl")):
        out.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return out
