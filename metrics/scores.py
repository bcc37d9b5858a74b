"""Per-sample scores for the three task families (docs/reference.md §5.1-§5.4).

Conventions:

* **Detection frame.** Boxes are ``[x_min, y_min, x_max, y_max]`` relative to the original slice size, in
  [0, 1], with the origin at the **lower-left** corner (x to the right, y up), as the prompt states.
* **Corners.** The plan's ``max_coords`` is used as is: no +1 and no half-pixel shift.
* **Units.** T/L values are millimetres; A/D values are millimetres (distances) or degrees (angles, not
  folded).
* **Dtype.** Parsed values are float32-rounded by :func:`medvision_metrics.parse.parse`; every score here is
  computed in float64 (Python floats).
* **Failures.** ``pred=None`` is a parse failure. Detection failures score 0 on IoU/F1/P/R (they count in
  means) and NaN on ``mae_coord``; T/L and A/D failures are NaN and drop out of error means.
* **Non-finite values.** An ``inf`` prediction (float32 overflow) propagates into the errors as ``inf``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

RELATIVE_ERROR_EPS = 1e-15
NAN = float("nan")


def _point_rc(coords: Sequence) -> tuple[float, float]:
    """(row, col) of a point; a nested list (the plan's list of points) uses its first point."""
    if len(coords) > 0 and hasattr(coords[0], "__len__"):
        coords = coords[0]
    if len(coords) != 2:
        raise ValueError(f"expected a (row, col) point, got {coords!r}")
    return float(coords[0]), float(coords[1])


def detection_target(
    image_size_2d_hw: Sequence[int], min_coords_rc: Sequence, max_coords_rc: Sequence
) -> list[float]:
    """Detection ground truth in the answer frame (docs/reference.md §5.1).

    Args:
        image_size_2d_hw: ``(H, W)`` of the original 2D slice, in pixels.
        min_coords_rc: ``(r0, c0)`` pixel row/column of the box's first corner (or the plan's list of points,
            whose first point is used).
        max_coords_rc: ``(r1, c1)`` of the far corner, used as is (no +1).

    Returns:
        ``[c0/W, (H - r1)/H, c1/W, (H - r0)/H]``: relative ``[x_min, y_min, x_max, y_max]``, origin
        lower-left, as float64 Python floats.
    """
    height, width = float(image_size_2d_hw[0]), float(image_size_2d_hw[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size_2d_hw must be positive (H, W), got {tuple(image_size_2d_hw)!r}")
    r0, c0 = _point_rc(min_coords_rc)
    r1, c1 = _point_rc(max_coords_rc)
    return [c0 / width, (height - r1) / height, c1 / width, (height - r0) / height]


def _fix_box(box: list[float]) -> list[float]:
    """Later-upstream box fix: sort each coordinate pair, then clamp to at most 1.0 (no lower clamp)."""
    x1, x2 = min(box[0], box[2]), max(box[0], box[2])
    y1, y2 = min(box[1], box[3]), max(box[1], box[3])
    return [min(v, 1.0) for v in (x1, y1, x2, y2)]


def _as_floats(values: Sequence[float], k: int, name: str) -> list[float]:
    if len(values) != k:
        raise ValueError(f"{name} must hold {k} values, got {len(values)}: {list(values)!r}")
    return [float(v) for v in values]


def score_detection(
    pred: Sequence[float] | None, target: Sequence[float], box_fix: bool = False
) -> dict[str, float]:
    """Score one detection answer against its GT box (docs/reference.md §5.2).

    Both boxes are relative ``[x_min, y_min, x_max, y_max]`` with the origin lower-left (§5.1).

    Args:
        pred: the 4 parsed numbers, or ``None`` for a parse failure.
        target: the GT box from :func:`detection_target`.
        box_fix: ``False`` (v1) uses ``pred`` as is, so an inverted box scores 0. ``True`` (later upstream)
            first sorts each pair and clamps every value to at most 1.0; the fixed box is also the one used
            for ``mae_coord``.

    Returns:
        ``{"iou", "f1", "precision", "recall", "mae_coord"}`` as float64. An empty intersection
        (``ix1 >= ix2`` or ``iy1 >= iy2``) gives 0 for IoU/F1/P/R. F1 is the Dice coefficient
        ``2I/(Ap+Ag)``. ``mae_coord`` is the mean absolute coordinate error. On failure IoU/F1/P/R are 0
        and ``mae_coord`` is NaN.
    """
    gx1, gy1, gx2, gy2 = _as_floats(target, 4, "target")
    if pred is None:
        return {"iou": 0.0, "f1": 0.0, "precision": 0.0, "recall": 0.0, "mae_coord": NAN}
    box = _as_floats(pred, 4, "pred")
    if box_fix:
        box = _fix_box(box)
    px1, py1, px2, py2 = box
    mae_coord = sum(abs(p - g) for p, g in zip(box, (gx1, gy1, gx2, gy2))) / 4.0
    ix1, iy1 = max(px1, gx1), max(py1, gy1)
    ix2, iy2 = min(px2, gx2), min(py2, gy2)
    if ix1 >= ix2 or iy1 >= iy2:
        return {"iou": 0.0, "f1": 0.0, "precision": 0.0, "recall": 0.0, "mae_coord": mae_coord}
    inter = (ix2 - ix1) * (iy2 - iy1)
    area_pred = (px2 - px1) * (py2 - py1)
    area_gt = (gx2 - gx1) * (gy2 - gy1)
    return {
        "iou": inter / (area_pred + area_gt - inter),
        "f1": 2.0 * inter / (area_pred + area_gt),
        "precision": inter / area_pred,
        "recall": inter / area_gt,
        "mae_coord": mae_coord,
    }


def _relative_error(abs_error: float, truth: float) -> float:
    return abs_error / (truth + RELATIVE_ERROR_EPS)


def score_tl(pred: Sequence[float] | None, target: Sequence[float]) -> dict[str, float]:
    """Score one tumour/lesion size answer (docs/reference.md §5.3).

    Args:
        pred: the 2 parsed numbers ``(major, minor)`` in mm, in the order given (not sorted: a swap is
            penalised), or ``None`` for a parse failure.
        target: GT ``(major, minor)`` axis lengths in mm.

    Returns:
        ``{"mae", "mre"}``: ``mae = (|p1-g1| + |p2-g2|)/2`` in mm and
        ``mre = (|p1-g1|/(g1+1e-15) + |p2-g2|/(g2+1e-15))/2`` (a fraction). Both NaN on failure; ``inf``
        propagates.
    """
    g1, g2 = _as_floats(target, 2, "target")
    if pred is None:
        return {"mae": NAN, "mre": NAN}
    p1, p2 = _as_floats(pred, 2, "pred")
    e1, e2 = abs(p1 - g1), abs(p2 - g2)
    return {"mae": (e1 + e2) / 2.0, "mre": (_relative_error(e1, g1) + _relative_error(e2, g2)) / 2.0}


def score_ad(pred: Sequence[float] | None, target: Sequence[float]) -> dict[str, float]:
    """Score one angle/distance answer (docs/reference.md §5.4).

    Args:
        pred: the single parsed number (mm for distances, degrees for angles), or ``None`` for a failure.
        target: ``[g]``, the GT value (float16-rounded in the plans).

    Returns:
        ``{"mae", "mre"}``: absolute error ``|p-g|`` (angles not folded: 100 vs 80 degrees is 20) and relative
        error ``|p-g|/(g+1e-15)``. Both NaN on failure; ``inf`` propagates.
    """
    (truth,) = _as_floats(target, 1, "target")
    if pred is None:
        return {"mae": NAN, "mre": NAN}
    (value,) = _as_floats(pred, 1, "pred")
    abs_error = abs(value - truth)
    return {"mae": abs_error, "mre": _relative_error(abs_error, truth)}


def is_nan(value: float | None) -> bool:
    """True for ``None`` and NaN; ``inf`` is not NaN (v1 tests only for NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))
