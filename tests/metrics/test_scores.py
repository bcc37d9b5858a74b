"""docs/reference.md §5.1-§5.4 and the worked examples A, C, D, F of §5.8."""

from __future__ import annotations

import math

import pytest
from medvision_metrics.parse import parse
from medvision_metrics.scores import detection_target, score_ad, score_detection, score_tl

GT_A = [0.390625, 0.6484375, 0.5859375, 0.8046875]


def test_detection_target_example() -> None:
    # H = W = 512, min (100, 200), max (180, 300): [200/512, (512-180)/512, 300/512, (512-100)/512]
    assert detection_target((512, 512), (100, 200), (180, 300)) == GT_A


def test_detection_target_accepts_the_plan_list_of_points_and_non_square_sizes() -> None:
    # H = 400, W = 200: [c0/W, (H-r1)/H, c1/W, (H-r0)/H]
    assert detection_target([400, 200], [[40, 20]], [[200, 100]]) == [0.1, 0.5, 0.5, 0.9]


def test_example_a_detection() -> None:
    values, success = parse("…Answer: 0.40, 0.60, 0.62, 0.80", 4)
    assert success
    scores = score_detection(values, GT_A)
    assert scores["iou"] == pytest.approx(0.608186, abs=1e-6)
    assert scores["f1"] == pytest.approx(0.756363, abs=1e-6)
    assert scores["precision"] == pytest.approx(0.640481, abs=1e-6)
    assert scores["recall"] == pytest.approx(0.923440, abs=1e-6)
    assert scores["mae_coord"] == pytest.approx(0.024141, abs=1e-6)
    assert 0.5 <= scores["iou"] < 0.7  # counts for IoU>0.5, not for IoU>0.7


def test_example_f_box_fix() -> None:
    inverted, _ = parse("0.62, 0.80, 0.40, 0.60", 4)
    assert score_detection(inverted, GT_A)["iou"] == 0.0
    fixed = score_detection(inverted, GT_A, box_fix=True)
    reference = score_detection(parse("0.40, 0.60, 0.62, 0.80", 4)[0], GT_A)
    for name in ("iou", "f1", "precision", "recall", "mae_coord"):
        assert fixed[name] == pytest.approx(reference[name], abs=1e-12)


def test_box_fix_clamps_only_from_above() -> None:
    # (1.2 -> 1.0); a negative value stays: upstream has no lower clamp
    gt = [0.0, 0.0, 1.0, 1.0]
    scores = score_detection([-0.5, 0.0, 1.2, 1.0], gt, box_fix=True)
    # pred [-0.5, 0, 1, 1]: I = 1, Ap = 1.5, Ag = 1
    assert scores["iou"] == pytest.approx(1 / 1.5)
    assert scores["precision"] == pytest.approx(1 / 1.5)
    assert scores["recall"] == pytest.approx(1.0)


def test_detection_failure_scores_zero_and_nan_mae() -> None:
    scores = score_detection(None, GT_A)
    assert (scores["iou"], scores["f1"], scores["precision"], scores["recall"]) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(scores["mae_coord"])


def test_touching_boxes_have_no_intersection() -> None:
    # ix1 >= ix2: boxes share an edge only
    scores = score_detection([0.5, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 1.0])
    assert scores["iou"] == scores["f1"] == 0.0
    assert scores["mae_coord"] == pytest.approx(0.25)  # (0.5 + 0 + 0.5 + 0)/4


def test_pixel_valued_answer_scores_zero_but_keeps_mae() -> None:
    scores = score_detection([120.0, 300.0, 250.0, 410.0], GT_A)
    assert scores["iou"] == 0.0
    assert scores["mae_coord"] > 100


def test_example_c_tl() -> None:
    values, _ = parse("24.0, 15.0", 2)
    scores = score_tl(values, [32.5, 18.0])
    # MAE = (8.5 + 3)/2; MRE = (8.5/32.5 + 3/18)/2
    assert scores["mae"] == pytest.approx(5.75, abs=1e-6)
    assert scores["mre"] == pytest.approx(0.214103, abs=1e-6)
    assert scores["mre"] >= 0.1  # not counted for MRE<0.1


def test_tl_is_order_sensitive_and_nan_on_failure() -> None:
    assert score_tl([18.0, 32.5], [32.5, 18.0])["mae"] == pytest.approx(14.5)
    failed = score_tl(None, [32.5, 18.0])
    assert math.isnan(failed["mae"]) and math.isnan(failed["mre"])


def test_example_d_distance() -> None:
    scores = score_ad(parse("58.0", 1)[0], [63.28125])
    assert scores["mae"] == pytest.approx(5.28125, abs=1e-6)
    assert scores["mre"] == pytest.approx(0.0834568, abs=1e-6)
    assert scores["mre"] < 0.1


def test_example_d_angle() -> None:
    scores = score_ad(parse("9", 1)[0], [4.5])
    assert scores["mae"] == pytest.approx(4.5, abs=1e-6)
    assert scores["mre"] == pytest.approx(1.0, abs=1e-6)


def test_angles_are_not_folded_and_epsilon_guards_zero() -> None:
    assert score_ad([100.0], [80.0])["mae"] == 20.0
    assert score_ad([1.0], [0.0])["mre"] == pytest.approx(1e15)


def test_ad_failure_is_nan_and_inf_propagates() -> None:
    failed = score_ad(None, [10.0])
    assert math.isnan(failed["mae"]) and math.isnan(failed["mre"])
    assert score_ad([float("inf")], [10.0]) == {"mae": float("inf"), "mre": float("inf")}


def test_wrong_lengths_raise() -> None:
    with pytest.raises(ValueError, match="target must hold 4"):
        score_detection([0.1, 0.2, 0.3, 0.4], [0.1, 0.2])
    with pytest.raises(ValueError, match="pred must hold 2"):
        score_tl([1.0], [1.0, 2.0])
