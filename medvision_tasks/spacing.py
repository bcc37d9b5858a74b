"""Counterfactual spacing variants (docs/spacing-test.md): the stated pixel size and every length GT times k.

A spacing variant is its base subtask with one change: the stub's ``mv_variant`` carries ``spacing_k`` (a
finite k > 0) and ``base_task``. Rows, rendered images and the perceived geometry are the base subtask's.
After every geometry rule (docs/reference.md §3.6) has produced the stated pixel size, it is multiplied by
k; T/L axes and A/D distances are multiplied by k, A/D angles are not (the control). GT values are the
stored float16 values (docs/reference.md §1.4 step 5) times k, in float64, not rounded again: for the
catalogued k (0.5, 2) the product is exact, so the order of rounding and scaling does not matter.

k is not a setting: it is part of the task, so a variant's ``settings_id`` equals its base subtask's and the
leaderboard can pair the two records of one doc.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import SettingsError


def spacing_factor(doc: Mapping[str, Any]) -> float | None:
    """k of a spacing-variant row (from ``mv_variant.spacing_k``), or None for every other row.

    Raises:
        SettingsError: k present but not a finite number > 0 (an edited stub).
    """
    variant = doc.get("mv_variant") or {}
    value = variant.get("spacing_k") if isinstance(variant, Mapping) else None
    if value is None:
        return None
    try:
        k = float(value)
    except (TypeError, ValueError):
        k = math.nan
    if not math.isfinite(k) or k <= 0:
        raise SettingsError(
            f"task {doc.get('mv_task')}: mv_variant.spacing_k={value!r} must be a finite number > 0; "
            "regenerate the stubs with `python -m medvision_tasks.catalogue --write`"
        )
    return k


def base_task(doc: Mapping[str, Any]) -> str | None:
    """Name of the base subtask of a spacing-variant row, or None."""
    variant = doc.get("mv_variant") or {}
    return variant.get("base_task") if isinstance(variant, Mapping) else None


def scales_with_spacing(doc: Mapping[str, Any]) -> bool:
    """True for lengths (T/L axes, A/D distances); False for angles and detection boxes."""
    family = doc["mv_family"]
    if family == "tl":
        return True
    if family == "ad":
        return str((doc.get("biometric_profile") or {}).get("metric_type")) != "angle"
    return False


def scale_target(doc: Mapping[str, Any], target: list[float]) -> list[float]:
    """The base GT times k for lengths, unchanged for angles, boxes and non-variant rows."""
    k = spacing_factor(doc)
    if k is None or not scales_with_spacing(doc):
        return target
    return [float(v) * k for v in target]


def scale_stated(doc: Mapping[str, Any], pw: float, ph: float) -> tuple[float, float]:
    """The stated (width, height) pixel size times k (every T/L and A/D prompt states one, angles included)."""
    k = spacing_factor(doc)
    if k is None:
        return pw, ph
    return pw * k, ph * k


def record_fields(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"k", "base_task"}`` for the per-sample record of a spacing-variant row, else None."""
    k = spacing_factor(doc)
    if k is None:
        return None
    return {"k": k, "base_task": base_task(doc), "scaled_target": scales_with_spacing(doc)}
