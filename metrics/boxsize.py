"""Box-size analysis of detection (docs/reference.md §6.6, ``--boxsize``): metrics per GT box / image area bin, beside a
seeded random-box detector.

* **Box area.** ``box_img_ratio = dimensions[0]·dimensions[1] / (H·W)``, with ``dimensions = max − min + 1``
  pixels (§1.3) of the GT box and (H, W) = ``image_size_2d``. The records carry the relative GT box
  ``target = [c0/W, (H − r1)/H, c1/W, (H − r0)/H]`` (§5.1), so ``dimensions = (round((t3 − t1)·H) + 1,
  round((t2 − t0)·W) + 1)``; the pixel corners are integers, so the rounding recovers them exactly.
* **Bins.** 5% wide: ``<5%``, ``5–10%``, …, ``85–90%``, ``≥90%`` (19 bins), index ``min(⌊20·ratio⌋, 18)``
  computed in integers.
* **Random-box reference.** For every distinct GT sample (config, row) of the table, :data:`DRAWS` boxes:
  width w uniform in the integers [1, W], height h in [1, H], x1 uniform in [0, W − w], y1 in [0, H − h],
  box ``(x1/W, y1/H, (x1 + w)/W, (y1 + h)/H)``; scored as §5.2 (success always true) and averaged over the
  draws. Samples are drawn in (config, row) order from ``numpy.random.default_rng(seed)`` (v1 seed 1024;
  the official script used none, an **Official bug** not copied).
* **Which samples.** Every non-excluded detection record of the leaderboard's models, whatever its region
  (the Table 2 key exclusions and the 50-sample floor are not applied). Percentages, as Table 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import RecordError
from .reduce import aggregate_detection

DEFAULT_BOXSIZE_SEED = 1024
DEFAULT_BOXSIZE_DRAWS = 100
BIN_COUNT = 19
BIN_WIDTH_PCT = 5
REFERENCE_MODEL = "random_box"
COLUMNS: dict[str, str] = {
    "R": "recall",
    "P": "precision",
    "F1": "f1",
    "IoU": "iou",
    "SR": "success_rate",
    "IoU>0.5": "iou>0.5",
    "F1>0.5": "f1>0.5",
}
PIXEL_TOLERANCE = 1e-6


def bin_labels() -> list[str]:
    """``["<5%", "5–10%", ..., "85–90%", "≥90%"]``."""
    inner = [f"{i * BIN_WIDTH_PCT}–{(i + 1) * BIN_WIDTH_PCT}%" for i in range(1, BIN_COUNT - 1)]
    return [f"<{BIN_WIDTH_PCT}%", *inner, f"≥{(BIN_COUNT - 1) * BIN_WIDTH_PCT}%"]


def gt_box_dimensions(target: Sequence[float], image_size_2d_hw: Sequence[int]) -> tuple[int, int]:
    """GT box ``dimensions`` (rows, cols) in pixels, ``max − min + 1``, from the relative target box.

    Example: H = W = 512, min (100, 200), max (180, 300) → target [0.390625, 0.6484375, 0.5859375, 0.8046875]
    → (81, 101).

    Raises:
        ValueError: a non-positive image size, or a target whose corners are not whole pixels.
    """
    height, width = int(image_size_2d_hw[0]), int(image_size_2d_hw[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size_2d must be positive (H, W), got {list(image_size_2d_hw)!r}")
    rows = (float(target[3]) - float(target[1])) * height
    cols = (float(target[2]) - float(target[0])) * width
    if abs(rows - round(rows)) > PIXEL_TOLERANCE or abs(cols - round(cols)) > PIXEL_TOLERANCE:
        raise ValueError(f"target {list(target)!r} does not fall on whole pixels of a {height}x{width} slice")
    return round(rows) + 1, round(cols) + 1


def box_bin(dimensions: Sequence[int], image_size_2d_hw: Sequence[int]) -> int:
    """Bin index ``min(⌊20·d0·d1/(H·W)⌋, 18)``, in integers (so 10% exactly is in ``10–15%``)."""
    area = int(image_size_2d_hw[0]) * int(image_size_2d_hw[1])
    return min((100 // BIN_WIDTH_PCT) * int(dimensions[0]) * int(dimensions[1]) // area, BIN_COUNT - 1)


def random_box_scores(
    targets: np.ndarray, sizes_hw: np.ndarray, seed: int = DEFAULT_BOXSIZE_SEED, draws: int = DEFAULT_BOXSIZE_DRAWS
) -> dict[str, np.ndarray]:
    """Random-box detector scores per GT sample, averaged over ``draws`` boxes (module docstring).

    Args:
        targets: (n, 4) relative GT boxes ``[x_min, y_min, x_max, y_max]``.
        sizes_hw: (n, 2) integer (H, W).

    Returns:
        ``{"iou", "f1", "precision", "recall", "iou>0.5", "f1>0.5"}``, each (n,) float64: the mean over the
        draws of the score (or of the indicator ``score >= 0.5``).
    """
    rng = np.random.default_rng(int(seed))
    height = sizes_hw[:, 0:1].astype(np.int64)
    width = sizes_hw[:, 1:2].astype(np.int64)
    n = targets.shape[0]
    w = rng.integers(1, width + 1, size=(n, draws))
    h = rng.integers(1, height + 1, size=(n, draws))
    x1 = rng.integers(0, width - w + 1)
    y1 = rng.integers(0, height - h + 1)
    px1, py1 = x1 / width, y1 / height
    px2, py2 = (x1 + w) / width, (y1 + h) / height
    gx1, gy1, gx2, gy2 = (targets[:, j : j + 1] for j in range(4))
    ix1, iy1 = np.maximum(px1, gx1), np.maximum(py1, gy1)
    ix2, iy2 = np.minimum(px2, gx2), np.minimum(py2, gy2)
    overlap = (ix1 < ix2) & (iy1 < iy2)
    inter = np.where(overlap, (ix2 - ix1) * (iy2 - iy1), 0.0)
    area_pred = (px2 - px1) * (py2 - py1)
    area_gt = (gx2 - gx1) * (gy2 - gy1)
    iou = inter / (area_pred + area_gt - inter)
    f1 = 2.0 * inter / (area_pred + area_gt)
    scores = {"iou": iou, "f1": f1, "precision": inter / area_pred, "recall": inter / area_gt}
    out = {name: values.mean(axis=1) for name, values in scores.items()}
    out["iou>0.5"] = (iou >= 0.5).mean(axis=1)
    out["f1>0.5"] = (f1 >= 0.5).mean(axis=1)
    return out


def _sample_bin(record: Mapping[str, Any], where: str) -> int:
    size = record.get("image_size_2d")
    if not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise RecordError(
            f"{where}: field 'image_size_2d' must be [H, W] positive integers for --boxsize, got {size!r}"
        )
    try:
        dimensions = gt_box_dimensions(record["target"], size)
    except ValueError as exc:
        raise RecordError(f"{where}: field 'target': {exc}") from None
    return box_bin(dimensions, size)


def _row(bin_index: int, model: str, source: str, samples: int, values: Mapping[str, float]) -> dict[str, Any]:
    labels = bin_labels()
    low = bin_index * BIN_WIDTH_PCT
    return {
        "bin": labels[bin_index],
        "bin_index": bin_index,
        "ratio_low_pct": low,
        "ratio_high_pct": None if bin_index == BIN_COUNT - 1 else low + BIN_WIDTH_PCT,
        "model": model,
        "source": source,
        "samples": samples,
        **{column: values[key] * 100.0 for column, key in COLUMNS.items()},
    }


def boxsize_analysis(
    detection: Mapping[str, Sequence[tuple[Mapping[str, Any], Mapping[str, Any], str]]],
    seed: int = DEFAULT_BOXSIZE_SEED,
    draws: int = DEFAULT_BOXSIZE_DRAWS,
) -> dict[str, Any]:
    """Detection metrics per box-size bin for each model, and the random-box reference per bin.

    Args:
        detection: ``{model_key: [(record, re-scored sample, where), ...]}`` (the leaderboard's detection items).
        seed, draws: of the random-box reference.

    Returns:
        ``{"bins": labels, "seed", "draws", "definition", "rows": [...]}``; one row per (bin, model) with samples,
        then one ``source: "random_box"`` row per bin (model ``random_box``, over the distinct GT samples of
        that bin). Rows carry ``bin``, ``bin_index``, ``ratio_low_pct``, ``ratio_high_pct``, ``samples`` and
        ``R P F1 IoU SR IoU>0.5 F1>0.5`` in %.

    Raises:
        RecordError: a record without a usable ``image_size_2d`` or with a target off the pixel grid.
    """
    rows: list[dict[str, Any]] = []
    ground_truth: dict[tuple[str, int], tuple[int, list[float], list[int]]] = {}
    for model_key in sorted(detection):
        by_bin: dict[int, list[Mapping[str, Any]]] = {}
        for record, sample, where in detection[model_key]:
            if sample.get("excluded"):
                continue
            index = _sample_bin(record, where)
            by_bin.setdefault(index, []).append(sample)
            ground_truth.setdefault(
                (str(record["config"]), int(record["row"])),
                (index, [float(v) for v in record["target"]], [int(v) for v in record["image_size_2d"]]),
            )
        for index in sorted(by_bin):
            aggregate = aggregate_detection(by_bin[index])
            rows.append(_row(index, model_key, "measured", int(aggregate["N"]), aggregate))
    if ground_truth:
        ordered = [ground_truth[key] for key in sorted(ground_truth)]
        bins = np.array([b for b, _, _ in ordered])
        scores = random_box_scores(
            np.array([t for _, t, _ in ordered], dtype=np.float64),
            np.array([s for _, _, s in ordered], dtype=np.int64),
            seed=seed,
            draws=draws,
        )
        for index in sorted(set(bins.tolist())):
            chosen = bins == index
            values = {key: float(scores[key][chosen].mean()) for key in scores}
            values["success_rate"] = 1.0
            rows.append(_row(index, REFERENCE_MODEL, REFERENCE_MODEL, int(chosen.sum()), values))
    rows.sort(key=lambda r: (r["bin_index"], r["source"] == REFERENCE_MODEL, r["model"]))
    return {
        "bins": bin_labels(),
        "seed": int(seed),
        "draws": int(draws),
        "definition": "box_img_ratio = dimensions[0]*dimensions[1]/(H*W) of the GT box, 5% bins",
        "rows": rows,
    }
