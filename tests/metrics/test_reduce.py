"""docs/reference.md §5.5 (group aggregation, example B) and §5.7 (lmms-eval metric reducers)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from medvision_metrics.reduce import aggregate_detection, aggregate_measure, bucket_index, reduce_metric

INF = float("inf")
NAN = float("nan")


def det(iou: float | None, mae: float = 0.05, excluded: bool = False) -> dict[str, Any]:
    """A detection sample; ``iou=None`` is a failure."""
    if iou is None:
        metrics = {"iou": 0.0, "f1": 0.0, "precision": 0.0, "recall": 0.0, "mae_coord": NAN}
        return {"success": False, "excluded": excluded, "metrics": metrics}
    metrics = {"iou": iou, "f1": iou, "precision": iou, "recall": iou, "mae_coord": mae}
    return {"success": True, "excluded": excluded, "metrics": metrics}


def meas(mae: float | None, mre: float | None = None, excluded: bool = False) -> dict[str, Any]:
    """A T/L or A/D sample; ``mae=None`` is a failure."""
    if mae is None:
        return {"success": False, "excluded": excluded, "metrics": {"mae": NAN, "mre": NAN}}
    return {
        "success": True,
        "excluded": excluded,
        "metrics": {"mae": mae, "mre": mae if mre is None else mre},
    }


def test_example_b_region_aggregation() -> None:
    # IoU 0.61, failure, 0.45, 0.71: mean over all N = (0.61 + 0 + 0.45 + 0.71)/4
    agg = aggregate_detection([det(0.61), det(None), det(0.45), det(0.71)])
    assert agg["N"] == 4
    assert agg["iou"] == pytest.approx(0.4425, abs=1e-6)
    assert agg["success_rate"] == pytest.approx(0.75)
    assert agg["iou>0.5"] == pytest.approx(0.50)
    assert agg["iou"] != pytest.approx(0.59)  # not the successes-only mean


def test_thresholds_use_greater_or_equal() -> None:
    # 0.5 counts for IoU>0.5 and 0.9 for IoU>0.9 despite the names
    agg = aggregate_detection([det(0.5), det(0.6), det(0.9), det(0.49)])
    assert agg["iou>0.5"] == pytest.approx(3 / 4)
    assert agg["iou>0.6"] == pytest.approx(2 / 4)
    assert agg["iou>0.7"] == pytest.approx(1 / 4)
    assert agg["iou>0.9"] == pytest.approx(1 / 4)
    assert agg["f1>0.5"] == agg["precision>0.5"] == agg["recall>0.5"] == pytest.approx(3 / 4)


def test_detection_mae_buckets_are_cumulative_over_n_and_hold_inf() -> None:
    # mae 0.05 -> bucket 0; 0.15 -> 1; 0.95 -> 9; inf -> 9; a failure is a miss everywhere
    samples = [det(0.8, 0.05), det(0.8, 0.15), det(0.8, 0.95), det(0.8, INF), det(None)]
    agg = aggregate_detection(samples)
    assert agg["MAE<0.1"] == pytest.approx(1 / 5)
    assert agg["MAE<0.2"] == pytest.approx(2 / 5)
    assert agg["MAE<0.9"] == pytest.approx(2 / 5)
    assert agg["MAE<1.0"] == pytest.approx(4 / 5) == agg["success_rate"]
    assert agg["avgMAE"] == INF  # inf propagates into the mean


def test_detection_avg_mae_is_over_successes_and_nan_without() -> None:
    assert aggregate_detection([det(0.8, 0.1), det(None), det(0.8, 0.3)])["avgMAE"] == pytest.approx(0.2)
    assert math.isnan(aggregate_detection([det(None)])["avgMAE"])


def test_excluded_samples_leave_n() -> None:
    agg = aggregate_detection([det(1.0), det(None, excluded=True)])
    assert agg["N"] == 1
    assert agg["success_rate"] == 1.0


def test_empty_group_is_nan() -> None:
    agg = aggregate_detection([])
    assert agg["N"] == 0
    assert math.isnan(agg["iou"]) and math.isnan(agg["success_rate"])
    assert math.isnan(aggregate_measure([])["avgMAE"])


def test_measure_means_over_successes_and_sr_over_n() -> None:
    agg = aggregate_measure([meas(4.0, 0.05), meas(None), meas(8.0, 0.25), meas(None)])
    assert agg["N"] == 4 and agg["successes"] == 2
    assert agg["avgMAE"] == pytest.approx(6.0)
    assert agg["avgMRE"] == pytest.approx(0.15)
    assert agg["success_rate"] == pytest.approx(0.5)


def test_measure_mre_buckets_strict_and_inf_in_last_bucket() -> None:
    # MRE 0.0999 -> bucket 0; 0.1 -> bucket 1 (not < 0.1); 5.0 -> 9; inf -> 9 (no OverflowError)
    samples = [meas(1.0, 0.0999), meas(1.0, 0.1), meas(1.0, 5.0), meas(INF, INF), meas(None)]
    agg = aggregate_measure(samples)
    assert agg["MRE<0.1"] == pytest.approx(1 / 5)
    assert agg["MRE<0.2"] == pytest.approx(2 / 5)
    assert agg["MRE<0.9"] == pytest.approx(2 / 5)
    assert agg["MRE<1.0"] == pytest.approx(4 / 5) == agg["success_rate"]
    assert agg["avgMRE"] == INF and agg["avgMAE"] == INF


def test_measure_without_successes_is_nan() -> None:
    agg = aggregate_measure([meas(None), meas(None)])
    assert math.isnan(agg["avgMAE"]) and math.isnan(agg["avgMRE"])
    assert agg["success_rate"] == 0.0
    assert agg["MRE<0.1"] == 0.0


def test_bucket_index() -> None:
    assert [bucket_index(v) for v in (0.0, 0.09, 0.1, 0.95, 12.0, INF)] == [0, 0, 1, 9, 9, 9]


# §5.7 per-lmms-eval-metric reducers
def entry(value: float | None, success: bool = True, excluded: bool = False) -> dict[str, Any]:
    return {"value": value, "success": success, "excluded": excluded}


ENTRIES = [entry(0.61), entry(None, success=False), entry(0.45), entry(0.71), entry(0.99, excluded=True)]


@pytest.mark.parametrize("name", ["iou", "f1", "precision", "recall"])
def test_reduce_score_means_count_failures_as_zero(name: str) -> None:
    assert reduce_metric(name, ENTRIES) == pytest.approx(0.4425)


def test_reduce_success_rate_and_iou_ge_050() -> None:
    assert reduce_metric("success_rate", ENTRIES) == pytest.approx(0.75)
    assert reduce_metric("iou_ge_050", ENTRIES) == pytest.approx(0.5)
    assert reduce_metric("iou_ge_050", [entry(0.5), entry(0.4999)]) == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["mae_coord", "mae", "mre"])
def test_reduce_error_means_over_successes(name: str) -> None:
    entries = [entry(2.0), entry(None, success=False), entry(4.0), entry(100.0, excluded=True)]
    assert reduce_metric(name, entries) == pytest.approx(3.0)
    result = reduce_metric(name, [entry(None, success=False)])
    assert isinstance(result, float) and math.isnan(result)


def test_reduce_mre_lt_010() -> None:
    entries = [entry(0.05), entry(0.1), entry(None, success=False), entry(0.02, excluded=True)]
    assert reduce_metric("mre_lt_010", entries) == pytest.approx(1 / 3)


def test_reduce_empty_is_nan() -> None:
    for name in ("iou", "success_rate", "iou_ge_050", "mae", "mre_lt_010"):
        assert math.isnan(reduce_metric(name, []))


def test_reduce_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown metric 'io'.*Did you mean 'iou'"):
        reduce_metric("io", [])
