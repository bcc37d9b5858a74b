"""One sample from response to scores: parse -> score -> exclusion rules (docs/reference.md §4-§5.6).

The same function scores a sample at run time (`medvision_tasks.hooks.process_results`) and again at
leaderboard time (`medvision_metrics.leaderboard`, where `--parse`/`--preset` may change the switches), so
the two can never disagree. Pure Python; the constants the rules use live here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import RecordError
from .parse import parse
from .scores import score_ad, score_detection, score_tl

# Numbers in an answer per family (docs/reference.md §0.2).
FAMILY_K: dict[str, int] = {"detection": 4, "tl": 2, "ad": 1}
# `ad_drop_near_zero` drops A/D samples whose GT is below this (degrees or mm; later upstream, §5.6).
AD_NEAR_ZERO_GT_THRESHOLD = 0.1
# The T/L multi-cluster list of a dataset folder (dataset release >= 1.1.0; `tl_remove_multicluster`).
MULTICLUSTER_FILE = "multi_cluster_samples_v1.0.0_to_v1.1.0.json"


@dataclass(frozen=True)
class ScoringSwitches:
    """The scoring-stage switches of docs/reference.md §5.6 plus the parser (§4)."""

    parse: str
    box_fix: bool = False
    ad_drop_near_zero: bool = False
    tl_remove_multicluster: bool = False


def score_sample(
    family: str,
    response: str,
    target: Sequence[float],
    switches: ScoringSwitches,
    multicluster_listed: bool | None = None,
    where: str = "sample",
) -> dict[str, Any]:
    """Parse `response` into `FAMILY_K[family]` numbers and score them against `target`.

    Returns ``{parsed, success, metrics, excluded, exclusion_reason}``. A parse failure is data
    (``success=False``; detection metrics 0, T/L and A/D NaN), never an exception. Exclusions: A/D samples
    with GT < `AD_NEAR_ZERO_GT_THRESHOLD` under `ad_drop_near_zero`; T/L samples listed in the dataset's
    multi-cluster file under `tl_remove_multicluster`.

    Raises:
        RecordError: unknown family, or `tl_remove_multicluster` on a T/L sample whose listing is unknown
            (``multicluster_listed is None``: the multi-cluster file was absent).
    """
    if family not in FAMILY_K:
        raise RecordError(f"{where}: family {family!r} is not one of {', '.join(FAMILY_K)}")
    values, success = parse(response, FAMILY_K[family], switches.parse)
    target = [float(v) for v in target]
    excluded, reason = False, None
    if family == "detection":
        metrics = score_detection(values, target, box_fix=switches.box_fix)
    elif family == "tl":
        metrics = score_tl(values, target)
        if switches.tl_remove_multicluster:
            if multicluster_listed is None:
                raise RecordError(
                    f"{where}: tl_remove_multicluster is on but 'multicluster_listed' is null: the "
                    f"multi-cluster file {MULTICLUSTER_FILE} of the dataset was absent when the record was "
                    "written; add the file and rerun, or leave the switch off (no --tl-remove-multicluster, "
                    "--preset v1)"
                )
            if multicluster_listed:
                excluded, reason = True, "tl_remove_multicluster"
    else:
        metrics = score_ad(values, target)
        if switches.ad_drop_near_zero and target[0] < AD_NEAR_ZERO_GT_THRESHOLD:
            excluded, reason = True, "ad_drop_near_zero"
    return {
        "parsed": values,
        "success": success,
        "metrics": metrics,
        "excluded": excluded,
        "exclusion_reason": reason,
    }
