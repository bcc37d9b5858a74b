"""Group rows weight only finite label values (docs/reference.md §6.2-§6.4); an inf stays in its own label (§5.5)."""

from __future__ import annotations

import math

from medvision_metrics.leaderboard import build_leaderboard
from mv_records import make_record

HUGE = "1" * 41  # overflows float32 to inf


def _row(board: dict, table: str, group: str) -> dict:
    return next(r for r in board[table] if r["group"] == group and r["source"] == "measured")


def test_tl_label_with_inf_mre_leaves_the_row():
    records = [
        make_record(
            "tl", row=0, config="KiTS23_TumorLesionSize_Task01_Axial_Test", label_name="kidney tumor", response="31, 20"
        ),  # MAE 0.5
        make_record(
            "tl", row=1, config="KiTS23_TumorLesionSize_Task01_Axial_Test", label_name="kidney tumor", response="29, 21"
        ),  # MAE 1.0
        make_record(
            "tl",
            row=0,
            config="KiPA22_TumorLesionSize_Task01_Axial_Test",
            dataset="KiPA22",
            label_name="kidney cyst",
            response=f"{HUGE}, 20",
        ),
    ]
    board = build_leaderboard(records)
    row = _row(board, "tl", "tl")
    assert (row["labels"], row["samples"]) == (1, 2)
    assert math.isclose(row["MAE"], 0.75)
    cyst = next(d for d in board["details"]["tl_labels"] if d["label"] == "kidney cyst @ CT (A)")
    assert cyst["in_row"] is False and math.isinf(cyst["MAE"])  # inf kept in its own label mean (§5.5)


def test_ad_label_with_inf_error_leaves_mae_but_stays_in_sr():
    cfg = "Ceph-Biometrics-400_BiometricsFromLandmarks_Distance_Task01_Sagittal_Test"
    records = [
        make_record(
            "ad",
            row=0,
            config=cfg,
            dataset="Ceph-Biometrics-400",
            metric_type="distance",
            metric_key="L-1-2",
            response="52",
        ),  # AE 2
        make_record(
            "ad",
            row=1,
            config=cfg,
            dataset="Ceph-Biometrics-400",
            metric_type="distance",
            metric_key="L-3-4",
            response=HUGE,
        ),
    ]
    row = _row(build_leaderboard(records), "ad", "ceph_distance")
    assert row["samples"] == 2 and math.isclose(row["SR"], 100.0)
    assert math.isclose(row["MAE"], 2.0)
