"""Reducers: per-sample scores to group metrics (docs/reference.md §5.5) and to lmms-eval metrics
(docs/reference.md §5.7).

Input samples are plain dicts ``{"success": bool, "excluded": bool, "metrics": {...}}`` with the metrics of
:mod:`medvision_metrics.scores`. Excluded samples are ignored entirely (they leave N as well). N counts every
other sample, successes or not. Values are fractions, not percentages. NaN is returned as ``float("nan")``;
``inf`` from a float32 overflow propagates into means and lands in the last bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .options import did_you_mean
from .scores import is_nan

NAN = float("nan")
THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
DETECTION_SCORES: tuple[str, ...] = ("iou", "f1", "precision", "recall")
NUM_BUCKETS = 10


def _included(samples: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [s for s in samples if not s.get("excluded", False)]


def _mean(values: list[float]) -> float:
    """Arithmetic mean in float64; NaN for an empty list; inf propagates."""
    if not values:
        return NAN
    total = 0.0
    for v in values:
        total += v
    return total / len(values)


def bucket_index(value: float) -> int:
    """Bucket ``min(int(value * 10), 9)`` of a non-negative error; ``inf`` goes to bucket 9 (no crash)."""
    if math.isinf(value):
        return NUM_BUCKETS - 1
    return min(int(value * 10), NUM_BUCKETS - 1)


def _cumulative_buckets(values: list[float], n: int, prefix: str) -> dict[str, float]:
    """``{prefix}<k/10`` for k = 1..10: cumulative bucket counts over ``n`` (failures count as misses)."""
    counts = [0] * NUM_BUCKETS
    for v in values:
        counts[bucket_index(v)] += 1
    out: dict[str, float] = {}
    running = 0
    for k in range(NUM_BUCKETS):
        running += counts[k]
        out[f"{prefix}<{(k + 1) / 10:.1f}"] = running / n if n else NAN
    return out


def aggregate_detection(samples: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Detection metrics of one group: a subtask, a region or a label (docs/reference.md §5.5).

    Returns:
        ``N`` and ``successes`` (counts); ``iou``, ``f1``, ``precision``, ``recall`` (means over all N,
        failures 0); ``success_rate``; ``{score}>{t}`` for score in iou/f1/precision/recall and t in
        0.5..0.9, equal to ``#(value >= t)/N`` (the test is ``>=`` despite the name); ``avgMAE`` (mean
        ``mae_coord`` over successes, NaN if none); ``MAE<k/10`` for k = 1..10 (cumulative bucket
        ``min(int(mae*10), 9)`` over N, so ``MAE<1.0`` equals the success rate). With N = 0 every fraction
        and mean is NaN.
    """
    rows = _included(samples)
    n = len(rows)
    successes = [s for s in rows if s.get("success")]
    out: dict[str, float] = {"N": n, "successes": len(successes)}
    per_score: dict[str, list[float]] = {name: [] for name in DETECTION_SCORES}
    for s in rows:
        metrics = s.get("metrics") or {}
        for name in DETECTION_SCORES:
            value = metrics.get(name)
            per_score[name].append(0.0 if not s.get("success") or is_nan(value) else float(value))
    for name in DETECTION_SCORES:
        out[name] = _mean(per_score[name])
    out["success_rate"] = len(successes) / n if n else NAN
    for name in DETECTION_SCORES:
        for t in THRESHOLDS:
            hits = sum(1 for v in per_score[name] if v >= t)
            out[f"{name}>{t:.1f}"] = hits / n if n else NAN
    maes = [float(s["metrics"]["mae_coord"]) for s in successes if not is_nan(s["metrics"].get("mae_coord"))]
    out["avgMAE"] = _mean(maes)
    out.update(_cumulative_buckets(maes, n, "MAE"))
    return out


def aggregate_measure(samples: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """T/L or A/D metrics of one group: a subtask or a label (docs/reference.md §5.5).

    Returns:
        ``N`` and ``successes`` (counts); ``avgMAE`` (mm or degrees) and ``avgMRE`` (fraction), means over
        successes, NaN if none; ``success_rate``; ``MRE<k/10`` for k = 1..10, the cumulative count of bucket
        ``min(int(MRE*10), 9)`` over N (``inf`` in bucket 9; failures are misses), so ``MRE<0.1`` means MRE
        strictly below 0.1 and ``MRE<1.0`` equals the success rate.
    """
    rows = _included(samples)
    n = len(rows)
    successes = [s for s in rows if s.get("success")]
    maes: list[float] = []
    mres: list[float] = []
    for s in successes:
        metrics = s.get("metrics") or {}
        if not is_nan(metrics.get("mae")):
            maes.append(float(metrics["mae"]))
        if not is_nan(metrics.get("mre")):
            mres.append(float(metrics["mre"]))
    out: dict[str, float] = {
        "N": n,
        "successes": len(successes),
        "avgMAE": _mean(maes),
        "avgMRE": _mean(mres),
        "success_rate": len(successes) / n if n else NAN,
    }
    out.update(_cumulative_buckets(mres, n, "MRE"))
    return out


def _mean_all_zero_fill(entries: list[Mapping[str, Any]]) -> float:
    return _mean([0.0 if is_nan(e.get("value")) else float(e["value"]) for e in entries])


def _success_rate(entries: list[Mapping[str, Any]]) -> float:
    return sum(1 for e in entries if e.get("success")) / len(entries) if entries else NAN


def _iou_ge_050(entries: list[Mapping[str, Any]]) -> float:
    if not entries:
        return NAN
    return sum(1 for e in entries if not is_nan(e.get("value")) and e["value"] >= 0.5) / len(entries)


def _mean_over_successes(entries: list[Mapping[str, Any]]) -> float:
    return _mean([float(e["value"]) for e in entries if e.get("success") and not is_nan(e.get("value"))])


def _mre_lt_010(entries: list[Mapping[str, Any]]) -> float:
    if not entries:
        return NAN
    hits = sum(1 for e in entries if e.get("success") and not is_nan(e.get("value")) and e["value"] < 0.1)
    return hits / len(entries)


_METRIC_REDUCERS = {
    "iou": _mean_all_zero_fill,
    "f1": _mean_all_zero_fill,
    "precision": _mean_all_zero_fill,
    "recall": _mean_all_zero_fill,
    "success_rate": _success_rate,
    "iou_ge_050": _iou_ge_050,
    "mae_coord": _mean_over_successes,
    "mae": _mean_over_successes,
    "mre": _mean_over_successes,
    "mre_lt_010": _mre_lt_010,
}
METRIC_NAMES: tuple[str, ...] = tuple(_METRIC_REDUCERS)
HIGHER_IS_BETTER: dict[str, bool] = {name: name not in ("mae_coord", "mae", "mre") for name in METRIC_NAMES}


def reduce_metric(name: str, entries: Iterable[Mapping[str, Any]]) -> float:
    """Reduce one lmms-eval metric over its per-sample entries (docs/reference.md §5.7).

    Each entry is ``{"value": float | None, "success": bool, "excluded": bool}``; excluded entries are
    ignored and N is the number of the others.

    * ``iou``, ``f1``, ``precision``, ``recall``: mean over all N, ``None``/NaN counting 0.
    * ``success_rate``: successes / N.
    * ``iou_ge_050``: ``#(value >= 0.5) / N``.
    * ``mae_coord``, ``mae``, ``mre``: mean over successes, NaN if none.
    * ``mre_lt_010``: ``#(success and value < 0.1) / N``.

    Returns:
        A fraction (not a percentage), or ``float("nan")`` when N (or, for the error means, the number of
        successes) is 0.

    Raises:
        ValueError: unknown metric name; the message lists the valid names and the closest one.
    """
    reducer = _METRIC_REDUCERS.get(name)
    if reducer is None:
        hint = did_you_mean(name, METRIC_NAMES)
        raise ValueError(f"unknown metric {name!r}; valid metrics: {', '.join(METRIC_NAMES)}.{hint}")
    return float(reducer(_included(entries)))
