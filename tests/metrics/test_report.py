"""Every output format renders; rank marks among measured rows; §8-layout table CSVs."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from medvision_metrics.leaderboard import build_leaderboard
from medvision_metrics.reference import load_paper_table
from medvision_metrics.report import format_value, latex_escape, render, table_csvs
from mv_records import HALF_BOX, ad_records, detection_records, make_records, tl_records


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    """medvision_v0_7b on all families, a random baseline on detection (for the ranks), paper rows."""
    baseline = {"adapter": "medvision_random", "response": HALF_BOX, "settings_id": "random01"}
    recs = detection_records() + tl_records() + ad_records()
    recs += make_records(60, region_label="kidney", **baseline) + make_records(
        60, region_label="kidney tumor", **baseline
    )
    return build_leaderboard(recs, paper=True)


def test_text_has_one_section_per_table(result: dict[str, Any]) -> None:
    text = render(result, "text")
    for title in ("Table 2 - detection", "Table 3 - T/L size", "Table 4 - A/D"):
        assert title in text
    header = next(line for line in text.splitlines() if line.startswith("model") and "IoU>0.5" in line)
    assert header.split() == [
        "model", "group", "source", "regions", "samples", "R", "P", "F1", "IoU", "SR", "IoU>0.5", "F1>0.5"
    ]  # fmt: skip
    assert "warnings:" in text and "the paper reports 13400" in text


def test_text_rank_marks_only_measured_rows(result: dict[str, Any]) -> None:
    lines = render(result, "text").splitlines()
    # anatomy IoU: medvision 80.0 (best), random 50.0 (second); the paper row 72.0 is not ranked
    v0 = next(line for line in lines if line.startswith("medvision_v0_7b  anatomy       measured"))
    paper = next(line for line in lines if line.startswith("medvision_v0_7b  anatomy       paper"))
    rnd = next(line for line in lines if line.startswith("random           anatomy"))
    assert v0.split()[8] == "80.0¹" and rnd.split()[8] == "50.0²"
    assert "¹" not in paper and "²" not in paper
    # lower is better for MAE: the single T/L measured row is not marked (fewer than two values)
    tl_line = next(line for line in lines if line.startswith("medvision_v0_7b  tl "))
    assert "¹" not in tl_line


def test_markdown(result: dict[str, Any]) -> None:
    md = render(result, "md")
    assert "### Table 2 - detection" in md and "### Table 4 - A/D" in md
    assert "| model | group | source | labels | samples | MAE | MRE | SR | MRE<0.1 |" in md
    assert "|---|---|---|---:|" in md
    assert "80.0¹" in md


def test_csv_is_one_plain_table(result: dict[str, Any]) -> None:
    rows = list(csv.reader(io.StringIO(render(result, "csv", detail=True))))
    assert rows[0][:6] == ["table", "model", "group", "source", "regions", "samples"]
    assert {len(row) for row in rows} == {len(rows[0])}  # one header, every line the same width
    tables = {row[0] for row in rows[1:]}
    assert {"Table 2 - detection", "Table 3 - T/L size", "Table 4 - A/D", "Per-label T/L"} <= tables
    text = render(result, "csv")
    assert "¹" not in text and "²" not in text and ",-," not in text
    v0 = next(r for r in rows if r[:4] == ["Table 2 - detection", "medvision_v0_7b", "anatomy", "measured"])
    assert v0[rows[0].index("IoU")] == "80.0" and v0[rows[0].index("MAE")] == ""


def test_rank_legend_in_text_md_latex(result: dict[str, Any]) -> None:
    assert "legend: ¹ ² ³ = best, second and third value" in render(result, "text")
    assert "Legend: ¹ ² ³ = best, second and third value" in render(result, "md")
    assert "bold, underlined, italic = best, second, third measured value" in render(result, "latex")
    assert "legend" not in render({"detection": [], "tl": [], "ad": [], "details": {}, "warnings": []}, "text")


def test_latex_booktabs_and_paper_columns(result: dict[str, Any]) -> None:
    tex = render(result, "latex")
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(rule) == 3
    # paper layout: one line per (model, source), Anatomy | Tumor/Lesion side by side
    assert "Model & R & P & F1 & IoU & SR & IoU$>$0.5 & R & P & F1 & IoU & SR & IoU$>$0.5 \\\\" in tex
    assert "\\multicolumn{6}{c}{Anatomy} & \\multicolumn{6}{c}{Tumor/Lesion}" in tex
    assert "Model & MAE & MRE & SR & MRE$<$0.1 \\\\" in tex
    assert "\\textbf{80.0}" in tex and "\\underline{50.0}" in tex
    assert "\nMedVision-V0 (7B) & \\textbf{80.0}" in tex and "\nMedVision-V0 (7B) (paper) & 81.3 & 80.4" in tex
    assert "¹" not in tex


def test_json_round_trips_with_null_for_nan(result: dict[str, Any]) -> None:
    loaded = json.loads(render(result, "json"))
    assert loaded["detection"] == result["detection"]
    assert any(d["MAE"] is None for d in loaded["details"]["tl_labels"])
    assert json.loads(render({"detection": [{"IoU": float("nan")}]}, "json"))["detection"][0]["IoU"] is None


def test_detail_sections(result: dict[str, Any]) -> None:
    text = render(result, "text", detail=True)
    assert "Per-region detection" in text and "Per-label T/L" in text and "Per-label A/D" in text
    assert "Miscellaneous Tumor/Lesion @ CT (A)" in text
    assert "Per-region detection" not in render(result, "text")


def test_empty_result_renders() -> None:
    empty = {"detection": [], "tl": [], "ad": [], "details": {}, "warnings": []}
    for fmt in ("text", "md", "csv", "latex", "json"):
        assert render(empty, fmt)
    assert "(no rows)" in render(empty, "text")


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="valid formats: text, md, csv, latex, json"):
        render({}, "html")


def test_format_value_and_latex_escape() -> None:
    assert [format_value(v) for v in (None, float("nan"), float("inf"), 3, 12.345)] == [
        "-",
        "-",
        "inf",
        "3",
        "12.3",
    ]
    assert latex_escape("a_b & 5% <x>") == "a\\_b \\& 5\\% $<$x$>$"


def test_table_csvs_follow_the_paper_layout(result: dict[str, Any]) -> None:
    files = table_csvs(result)
    assert set(files) == {"table2_detection.csv", "table3_tl.csv", "table4_ad.csv"}
    for name, table in (
        ("table2_detection.csv", "detection"),
        ("table3_tl.csv", "tl"),
        ("table4_ad.csv", "ad"),
    ):
        rows = list(csv.DictReader(io.StringIO(files[name])))
        paper_header = list(load_paper_table(table)[0])
        assert list(rows[0])[: len(paper_header)] == paper_header
    det = {
        (r["model_key"], r["source"]): r for r in csv.DictReader(io.StringIO(files["table2_detection.csv"]))
    }
    measured = det[("medvision_v0_7b", "measured")]
    assert float(measured["anatomy_iou_pct"]) == pytest.approx(80.0)
    assert measured["anatomy_samples"] == "50" and measured["paper_name"] == "MedVision-V0"
    assert det[("medvision_v0_7b", "paper")]["anatomy_iou_pct"] == "72.0"
    assert det[("random", "measured")]["paper_name"] == ""
    ad = next(csv.DictReader(io.StringIO(files["table4_ad.csv"])))
    assert float(ad["feta24_distance_mae_mm"]) == pytest.approx(4.0)
    assert ad["ad_overall_samples"] == "163"
