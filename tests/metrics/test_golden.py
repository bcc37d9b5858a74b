"""Golden outputs of the leaderboard in every format, and the LaTeX tables' paper columns and row counts.

The golden files in tests/golden/leaderboard/ are the reviewed outputs for a fixed record set. A change in
any format fails here. To accept an intended change, regenerate them explicitly and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/metrics/test_golden.py && git diff tests/golden/leaderboard
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from medvision_metrics.leaderboard import build_leaderboard
from medvision_metrics.reference import PAPER_COLUMNS, load_paper_table
from medvision_metrics.report import paper_tables, render
from mv_records import HALF_BOX, ad_records, detection_records, make_records, paper_model_records, tl_records

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "leaderboard"
UPDATE_VARIABLE = "UPDATE_GOLDEN"
EXTENSIONS: dict[str, str] = {"text": "txt", "md": "md", "csv": "csv", "latex": "tex", "json": "json"}


def golden_records() -> list[dict[str, Any]]:
    """medvision_v0_7b on all three families (hand-computed sets of test_leaderboard) and a random baseline on
    detection, so that rank marks, paper rows, excluded and small regions, merges and zero-success labels all
    appear."""
    baseline = {"adapter": "medvision_random", "response": HALF_BOX, "settings_id": "random01"}
    recs = detection_records() + tl_records() + ad_records()
    recs += make_records(60, region_label="kidney", **baseline)
    recs += make_records(60, region_label="kidney tumor", **baseline)
    return recs


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return build_leaderboard(golden_records(), paper=True)


@pytest.mark.parametrize("fmt", list(EXTENSIONS))
def test_format_matches_golden(result: dict[str, Any], fmt: str) -> None:
    path = GOLDEN_DIR / f"leaderboard.{EXTENSIONS[fmt]}"
    rendered = render(result, fmt, detail=True)
    if os.environ.get(UPDATE_VARIABLE) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    if not path.exists():
        pytest.fail(f"{path} is missing; create it with {UPDATE_VARIABLE}=1 and review it")
    assert rendered == path.read_text(encoding="utf-8"), (
        f"{fmt} output differs from {path}; if the change is intended, rerun with {UPDATE_VARIABLE}=1 and review "
        "the diff"
    )


def test_every_golden_file_is_checked() -> None:
    assert sorted(p.name for p in GOLDEN_DIR.iterdir()) == sorted(f"leaderboard.{e}" for e in EXTENSIONS.values())


def paper_header(table: str) -> list[str]:
    """The paper CSV's metric columns (§8), as leaderboard column names, in order."""
    names = [c for c in load_paper_table(table)[0] if c not in ("model_key", "paper_name", "params")]
    by_csv = {csv: name for (t, _), columns in PAPER_COLUMNS.items() if t == table for csv, name in columns.items()}
    return [by_csv[c] for c in names]


def tabulars(tex: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header cells, body rows) of every tabular: the last header line before \\midrule, the lines after it."""
    out = []
    for block in re.findall(r"\\midrule\n(.*?)\\bottomrule", tex, re.S):
        body = [line.removesuffix(" \\\\").split(" & ") for line in block.strip().splitlines()]
        out.append(body)
    headers = [line.removesuffix(" \\\\").split(" & ") for line in re.findall(r"(Model & .*?)\n\\midrule", tex)]
    return list(zip(headers, out))


@pytest.mark.parametrize("paper", [False, True])
def test_latex_has_the_papers_columns_and_row_count(paper: bool) -> None:
    result = build_leaderboard(paper_model_records(per_region=50, per_label=3), paper=paper)
    tex = render(result, "latex")
    tables = tabulars(tex)
    assert len(tables) == 3
    for (header, body), table in zip(tables, ("detection", "tl", "ad")):
        shown = [cell.replace("$>$", ">").replace("$<$", "<") for cell in header]
        assert shown == ["Model", *paper_header(table)]
        assert len(body) == (26 if paper else 13)  # the paper's 13 models (+ their published lines)
        assert all(len(row) == len(header) for row in body)
    first = {t.table: t for t in paper_tables(result)}["detection"].cells[0][0]
    assert first == "Gemma3 (27B)"
    assert tex.count("\\cmidrule(lr)") == 5  # Anatomy | Tumor/Lesion; Ceph distance | Ceph angle | FeTA24 distance
