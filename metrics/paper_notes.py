"""Checks and notes around the published rows and the A/D near-zero filter.

* `check_paper_model`: an unknown ``--paper-model`` key is a ValueError listing the valid keys.
* `unpublished_models_warning`: with ``--paper``, which measured models have no published rows.
* `near_zero_share` / `near_zero_note`: how much of the Ceph-angle relative error comes from samples whose
  ground-truth angle is below 0.1 degree (relative error divides by the GT, so a 0.01 degree GT turns a 1 degree
  miss into 10,000 %); ``--preset paper`` (or ``--ad-drop-near-zero``) drops them, as the paper's counts imply.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .options import invalid_value_message
from .reference import paper_model_keys

NEAR_ZERO_DOMINANT_SHARE = 0.5  # note when samples with GT < threshold carry at least half the summed MRE


def check_paper_model(key: str) -> None:
    """Raise ValueError naming ``key``, the 13 paper model keys and the closest one, unless ``key`` is one."""
    keys = paper_model_keys()
    if key not in keys:
        raise ValueError(invalid_value_message("--paper-model", key, keys))


def unpublished_models_warning(
    tables: Mapping[str, Sequence[Mapping[str, Any]]], paper_model: str | None
) -> str | None:
    """One line naming the measured models that got no published row under ``--paper`` (None when all did)."""
    if paper_model is not None:
        return None
    published = set(paper_model_keys())
    measured = dict.fromkeys(
        str(row["model"]) for rows in tables.values() for row in rows if row.get("source", "measured") == "measured"
    )
    missing = [model for model in measured if model not in published]
    if not missing:
        return None
    return (
        f"--paper: no published rows for {', '.join(missing)} (the paper reports {', '.join(sorted(published))}); "
        "--paper-model KEY prints one paper model's rows beside every measured model"
    )


def near_zero_share(pairs: Iterable[tuple[float, Mapping[str, Any]]], threshold: float) -> tuple[int, int, float]:
    """``(near-zero samples, samples in the MRE, share of the summed MRE)`` over (GT value, scored sample) pairs.

    Only included, successful samples with a finite MRE count (those are the ones the MRE averages)."""
    total, near, n, n_near = 0.0, 0.0, 0, 0
    for gt, sample in pairs:
        mre = (sample.get("metrics") or {}).get("mre")
        if sample.get("excluded") or not sample.get("success") or not isinstance(mre, (int, float)):
            continue
        if not math.isfinite(mre):
            continue
        n += 1
        total += float(mre)
        if abs(gt) < threshold:
            n_near += 1
            near += float(mre)
    return n_near, n, (near / total if total > 0 else 0.0)


def near_zero_note(pairs: Iterable[tuple[float, Mapping[str, Any]]], threshold: float) -> str | None:
    """The note printed under Table 4 when near-zero GT angles carry most of the MRE, else None."""
    n_near, n, share = near_zero_share(pairs, threshold)
    if not n_near or share < NEAR_ZERO_DOMINANT_SHARE:
        return None
    return (
        f"{n_near} of {n} samples in the MRE have a GT angle below {threshold:g} degree and carry {share:.0%} of the "
        "summed relative error (relative error divides by the GT); --preset paper (or --ad-drop-near-zero) drops "
        "them, as the paper's counts imply"
    )
