"""The metrics package stays pure: no lmms-eval, nibabel, torch or medvision_tasks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import medvision_metrics

FORBIDDEN = ("lmms_eval", "nibabel", "torch", "medvision_tasks")


def test_import_pulls_in_no_heavy_or_host_module() -> None:
    code = (
        "import sys, medvision_metrics, medvision_metrics.leaderboard_cli, medvision_metrics.compare_cli;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_matplotlib_is_imported_only_when_a_figure_is_drawn() -> None:
    code = (
        "import sys, medvision_metrics.leaderboard_cli, medvision_metrics.figure;"
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_sources_do_not_import_forbidden_modules() -> None:
    package_dir = Path(medvision_metrics.__file__).parent
    pattern = re.compile(rf"^\s*(from|import)\s+({'|'.join(FORBIDDEN)})\b", re.MULTILINE)
    offenders = [p.name for p in package_dir.glob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_public_api() -> None:
    for name in (
        "parse",
        "score_detection",
        "aggregate_detection",
        "reduce_metric",
        "build_leaderboard",
        "render",
    ):
        assert callable(getattr(medvision_metrics, name))
    assert issubclass(medvision_metrics.RecordError, ValueError)
