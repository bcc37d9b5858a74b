"""Leaderboard grouping keys from the v1 label maps (docs/reference.md §6.2-§6.4, §6.7).

The maps are the verbatim v1 extract shipped as ``medvision_metrics/data/label_maps_v1.json``. Labels are
matched exactly (as stored in the plans); keyword tests on region keys are on the lower-cased key.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from .errors import RecordError

LABEL_MAPS_FILE = Path(__file__).parent / "data" / "label_maps_v1.json"
MODALITY_CODES: dict[str, str] = {"MRI": "MR", "CT": "CT", "ultrasound": "US", "X-ray": "XR", "PET": "PET"}
PLANE_CODES: dict[int, str] = {0: "S", 1: "C", 2: "A"}
UNKNOWN_LABEL_POLICIES: tuple[str, ...] = ("error", "others")
UNKNOWN_REGION_PARENT = "Others"
UNKNOWN_TL_NAME = "others"


@functools.lru_cache(maxsize=1)
def load_label_maps() -> dict[str, Any]:
    """The v1 label maps: ``label_map_regroup``, ``label_map_rename``, ``EXCLUDED_KEYS``,
    ``TUMOR_LESION_GROUP_KEYS``, ``MINIMUM_GROUP_SIZE``, ``RANDOM_BOX_SIMULATIONS``, ``SEED``.

    The returned dict is cached and shared; do not mutate it.
    """
    with LABEL_MAPS_FILE.open(encoding="utf-8") as handle:
        return json.load(handle)


def excluded_keywords() -> tuple[str, ...]:
    """Lower-case keywords whose region keys leave Table 2 (``miscellaneous``, ``others``)."""
    return tuple(load_label_maps()["EXCLUDED_KEYS"])


def tumor_lesion_keywords() -> tuple[str, ...]:
    """Lower-case keywords that put a region key into Tumor/Lesion (``tumor``, ``lesion``, ``metastatic``)."""
    return tuple(load_label_maps()["TUMOR_LESION_GROUP_KEYS"])


def minimum_group_size() -> int:
    """The v1 region size floor (50 samples)."""
    return int(load_label_maps()["MINIMUM_GROUP_SIZE"])


def _check_policy(unknown: str) -> None:
    if unknown not in UNKNOWN_LABEL_POLICIES:
        raise ValueError(
            f"unknown-label policy must be one of {', '.join(UNKNOWN_LABEL_POLICIES)}, got {unknown!r}"
        )


def modality_code(modality: str | None) -> str:
    """``MRI``->``MR``, ``CT``->``CT``, ``ultrasound``->``US``, ``X-ray``->``XR``, ``PET``->``PET`` by exact
    match; any other value passes through unchanged."""
    if modality is None:
        raise RecordError("modality is missing (null); the region and label keys need it")
    return MODALITY_CODES.get(modality, modality)


def plane_code(slice_dim: int | None) -> str:
    """``slice_dim`` 0/1/2 -> ``S``/``C``/``A``."""
    try:
        return PLANE_CODES[int(slice_dim)]  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        raise RecordError(f"slice_dim must be 0, 1 or 2, got {slice_dim!r}") from None


def _lookup(label: str | None, table: str, unknown: str, fallback: str) -> str:
    _check_policy(unknown)
    mapping: dict[str, str] = load_label_maps()[table]
    if label is not None and label in mapping:
        return mapping[label]
    if unknown == "others":
        return fallback
    raise RecordError(
        f"label {label!r} is not in {table} of the v1 label maps ({LABEL_MAPS_FILE.name}); "
        f"pass --unknown-label others to count it under {fallback!r}"
    )


def region_key(
    region_label: str | None, region_modality: str | None, slice_dim: int | None, unknown: str = "error"
) -> str:
    """Detection region key ``"{label_map_regroup[region_label]} @ {MOD} ({P})"`` (docs/reference.md §6.2).

    Example: ``region_key("kidney tumor", "CT", 2) == "Kidney Tumor/Lesion @ CT (A)"``.

    Raises:
        RecordError: a label missing from the map when ``unknown="error"`` (``"others"`` maps it to
            ``Others``), a missing modality or a bad ``slice_dim``.
    """
    parent = _lookup(region_label, "label_map_regroup", unknown, UNKNOWN_REGION_PARENT)
    return f"{parent} @ {modality_code(region_modality)} ({plane_code(slice_dim)})"


def tl_label_key(
    label_name: str | None, modality: str | None, slice_dim: int | None, unknown: str = "error"
) -> str:
    """T/L label key ``"{label_map_rename[label_name]} @ {MOD} ({P})"`` (docs/reference.md §6.3).

    Configs whose targets share a renamed name merge into one key.

    Raises:
        RecordError: as :func:`region_key`; ``unknown="others"`` renames a missing label to ``others``.
    """
    renamed = _lookup(label_name, "label_map_rename", unknown, UNKNOWN_TL_NAME)
    return f"{renamed} @ {modality_code(modality)} ({plane_code(slice_dim)})"


def ad_label_key(dataset: str | None, metric_type: str | None, metric_key: str | None) -> str:
    """A/D label key ``"{dataset}_{metric_type}_{metric_key}"`` (docs/reference.md §6.4); FeTA24 planes pool into one
    key.

    Raises:
        RecordError: when any part is missing.
    """
    for field, value in (("dataset", dataset), ("metric_type", metric_type), ("metric_key", metric_key)):
        if value is None or value == "":
            raise RecordError(f"A/D record field {field!r} is missing (null); the A/D label key needs it")
    return f"{dataset}_{metric_type}_{metric_key}"


def is_excluded_region(key: str) -> bool:
    """True when the lower-cased key contains ``miscellaneous`` or ``others`` (v1 ``EXCLUDED_KEYS``)."""
    lowered = key.lower()
    return any(word in lowered for word in excluded_keywords())


def is_tumor_lesion_region(key: str) -> bool:
    """True when the lower-cased key contains ``tumor``, ``lesion`` or ``metastatic``."""
    lowered = key.lower()
    return any(word in lowered for word in tumor_lesion_keywords())
