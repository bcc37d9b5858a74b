"""Leaderboard warnings for what the v1 rules drop, and strict JSON (no NaN/Infinity) in leaderboard.json."""

from __future__ import annotations

import json
import math

import pytest
from medvision_metrics.hygiene import NONFINITE_KEY, strict
from medvision_metrics.leaderboard import build_leaderboard
from medvision_metrics.report import render
from mv_records import make_record

FORTY_DIGITS = "1" * 40  # beyond float32: the parsed value and the error are infinite
TL = "KiTS23_TumorLesionSize_Task01_Axial_Test"


def strict_loads(text: str):
    def refuse(constant: str):
        raise AssertionError(f"non-strict JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def _tl_records(response: str) -> list[dict]:
    good = [make_record("tl", row=i, config=TL, label_name="kidney tumor", response=f"{30 + i}, 20") for i in range(2)]
    cfg = "KiPA22_TumorLesionSize_Task01_Axial_Test"
    huge = make_record("tl", row=0, config=cfg, dataset="KiPA22", label_name="kidney cyst", response=response)
    return [*good, huge]


def test_forty_digit_response_gives_a_warning_line_and_strict_json(capsys):
    board = build_leaderboard(_tl_records(f"{FORTY_DIGITS}, 20"))
    lines = [w for w in board["warnings"] if "non-finite error" in w]
    assert len(lines) == 1 and "kidney cyst @ CT (A) (1)" in lines[0] and "1 sample(s)" in lines[0]
    dropped = [w for w in board["warnings"] if "T/L labels left out" in w]
    assert dropped and "kidney cyst @ CT (A) (1)" in dropped[0]
    text = render(board, "json")
    data = strict_loads(text)
    cyst = next(d for d in data["details"]["tl_labels"] if d["label"] == "kidney cyst @ CT (A)")
    assert cyst["MAE"] is None and cyst[NONFINITE_KEY]["MAE"] == "inf"
    assert "non-finite error" in render(board, "text")


def test_ordinary_response_gives_no_drop_warning():
    board = build_leaderboard(_tl_records("31, 20"))
    assert not [w for w in board["warnings"] if "left out" in w or "non-finite" in w]


def test_ad_zero_success_label_is_listed_with_its_count():
    cfg = "Ceph-Biometrics-400_BiometricsFromLandmarks_Distance_Task01_Sagittal_Test"
    kw = {"config": cfg, "dataset": "Ceph-Biometrics-400", "metric_type": "distance"}
    records = [make_record("ad", row=0, metric_key="L-1-2", response="52", **kw)]
    records += [make_record("ad", row=1 + i, metric_key="L-3-4", response="no idea", **kw) for i in range(3)]
    board = build_leaderboard(records)
    line = next(w for w in board["warnings"] if "A/D labels left out" in w)
    assert "Ceph-Biometrics-400_distance_L-3-4 (3)" in line and "3 sample(s)" in line


def test_strict_replaces_every_non_finite_value():
    value = {"a": math.inf, "b": [1.0, -math.inf], "c": math.nan, "d": {"e": [math.nan]}, "f": "x"}
    out = strict(value)
    assert out == {
        "a": None,
        "b": [1.0, None],
        "c": None,
        "d": {"e": [None]},
        "f": "x",
        NONFINITE_KEY: {"a": "inf", "b[1]": "-inf"},
    }
    json.dumps(out, allow_nan=False)
    with pytest.raises(ValueError):
        json.dumps(value, allow_nan=False)


def test_json_format_prints_the_warnings_on_stderr(tmp_path, capsys):
    from medvision_metrics.leaderboard_cli import main
    from mv_records import write_samples

    write_samples(tmp_path / "run" / "x_samples_medvision_tl.jsonl", _tl_records(f"{FORTY_DIGITS}, 20"))
    assert main([str(tmp_path / "run"), "--format", "json"]) == 0
    captured = capsys.readouterr()
    strict_loads(captured.out)
    assert any(line.startswith("warning: ") and "non-finite error" in line for line in captured.err.splitlines())
