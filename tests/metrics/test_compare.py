"""``compare``: regression semantics, tolerances, missing rows, and the CLI exit codes."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from medvision_metrics.compare import compare
from medvision_metrics.compare_cli import add_arguments, parse_tolerances, run
from mv_records import make_records, write_samples

BASELINE: dict[str, Any] = {
    "detection": [
        {"model": "m", "group": "anatomy", "regions": 18, "samples": 100, "R": 50.0, "P": 40.0, "F1": 30.0,
         "IoU": 20.0, "SR": 100.0, "IoU>0.5": 10.0, "F1>0.5": 12.0, "source": "measured"},
        {"model": "m", "group": "anatomy", "regions": 18, "samples": 13400, "IoU": 99.0, "source": "paper"},
    ],
    "tl": [{"model": "m", "group": "tl", "labels": 3, "samples": 50, "MAE": 10.0, "MRE": 30.0, "SR": 90.0,
            "MRE<0.1": 20.0, "source": "measured"}],
    "ad": [],
}  # fmt: skip


def changed(table: str, column: str, value: Any) -> dict[str, Any]:
    current = copy.deepcopy(BASELINE)
    current[table][0][column] = value
    return current


def statuses(differences: list[dict[str, Any]]) -> dict[tuple[str | None, str], str]:
    return {(d["metric"], d["group"]): d["status"] for d in differences if d["status"] != "same"}


def test_identical_results_pass() -> None:
    differences, regressed = compare(BASELINE, copy.deepcopy(BASELINE), {})
    assert not regressed
    assert all(d["status"] == "same" for d in differences)


def test_drop_beyond_tolerance_is_a_regression() -> None:
    current = changed("detection", "IoU", 19.0)  # -1.0 point
    differences, regressed = compare(BASELINE, current, {})
    assert regressed and statuses(differences) == {("IoU", "anatomy"): "regression"}
    differences, regressed = compare(BASELINE, current, {"IoU": 1.5})
    assert not regressed and statuses(differences) == {("IoU", "anatomy"): "within_tolerance"}
    assert compare(BASELINE, current, {"*": 0.5})[1]


def test_lower_is_better_for_mae_and_mre() -> None:
    assert compare(BASELINE, changed("tl", "MAE", 10.5), {})[1]  # MAE rose
    assert not compare(BASELINE, changed("tl", "MAE", 9.0), {})[1]  # MAE fell: improved
    assert compare(BASELINE, changed("tl", "MRE", 31.0), {"MRE": 0.5})[1]
    assert not compare(BASELINE, changed("tl", "MRE", 31.0), {"MRE": 1.0})[1]
    assert statuses(compare(BASELINE, changed("tl", "SR", 95.0), {})[0]) == {("SR", "tl"): "improved"}


def test_value_turning_null_is_a_regression_and_samples_are_info() -> None:
    assert compare(BASELINE, changed("tl", "MAE", None), {})[1]
    differences, regressed = compare(BASELINE, changed("tl", "samples", 49), {})
    assert not regressed and statuses(differences) == {("samples", "tl"): "changed"}


def test_missing_row_is_a_regression_new_row_is_not() -> None:
    current = copy.deepcopy(BASELINE)
    current["tl"] = []
    differences, regressed = compare(BASELINE, current, {})
    assert regressed and statuses(differences) == {(None, "tl"): "missing"}
    differences, regressed = compare(current, BASELINE, {})
    assert not regressed and statuses(differences) == {(None, "tl"): "new"}


def test_paper_rows_are_ignored() -> None:
    current = copy.deepcopy(BASELINE)
    current["detection"][1]["IoU"] = 0.0
    assert not compare(BASELINE, current, {})[1]


def test_bad_tolerances() -> None:
    with pytest.raises(ValueError, match="unknown tolerance metric 'Iou'.*Did you mean 'IoU'"):
        compare(BASELINE, BASELINE, {"Iou": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        compare(BASELINE, BASELINE, {"IoU": -1.0})


def test_parse_tolerances() -> None:
    assert parse_tolerances(["IoU>0.5=0.5,MAE=1", "SR=2"]) == {"IoU>0.5": 0.5, "MAE": 1.0, "SR": 2.0}
    with pytest.raises(ValueError, match="METRIC=ABS"):
        parse_tolerances(["IoU"])


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base.json"
    base.write_text(json.dumps(BASELINE))
    worse = tmp_path / "worse.json"
    worse.write_text(json.dumps(changed("detection", "IoU", 18.0)))  # planted regression: -2 points
    assert cli(str(base), str(base)) == 0
    assert cli(str(base), str(worse)) == 1
    out = capsys.readouterr().out
    assert "regression" in out and "IoU" in out and "-2.000" in out
    assert cli(str(base), str(worse), "--tolerance", "IoU=2.5") == 0
    assert cli(str(base), str(worse), "--tolerance", "IoU=1.5") == 1
    assert cli(str(base), str(tmp_path / "nope.json")) == 2
    assert "error:" in capsys.readouterr().err


def test_cli_accepts_run_folders(tmp_path: Path) -> None:
    write_samples(tmp_path / "a" / "x_samples_medvision_det.jsonl", make_records(50, region_label="kidney"))
    write_samples(
        tmp_path / "b" / "x_samples_medvision_det.jsonl",
        make_records(
            50, region_label="kidney", response="nothing", data_root_kind="demo"
        ),  # demo is accepted
    )
    assert cli(str(tmp_path / "a"), str(tmp_path / "a")) == 0
    assert cli(str(tmp_path / "a"), str(tmp_path / "b")) == 1  # SR 100 -> 0
