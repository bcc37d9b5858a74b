"""Cluster-bootstrap confidence intervals for every leaderboard cell (issue 5, ``--ci``).

Slices of one volume are not independent, so the resampling unit is the **volume**: cluster =
``dataset + image_file_rel``. For one model, the clusters of all its (non-excluded) samples are pooled across
the three families; K is their number. One replicate draws K clusters with replacement; a sample's weight is
the number of times its cluster was drawn. Every cell is then recomputed with the §5.5/§6 rules on the
weighted samples, including the 50-sample region floor, the T/L zero-success drop and the A/D error-mean
rule, so region and label membership may change between replicates as it would between datasets.

The interval is the empirical (α/2, 1 − α/2) quantile (inverted CDF, no interpolation, so ``inf`` is safe)
of the replicates in which the cell is defined (not NaN). Units are the leaderboard's (percent; mm or
degrees). Replicates are drawn in fixed blocks of :data:`BLOCK` from ``numpy.random.default_rng([seed,
crc32(model key)])``, so a model's intervals depend only on its own records, the seed and the iterations.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .scores import is_nan

DEFAULT_CI_ITERATIONS = 1000
DEFAULT_CI_SEED = 0
BLOCK = 100
THRESHOLD = 0.5
# detection: per-sample statistics (columns of the statistic matrix) and the cells built from them
DETECTION_STATS: tuple[str, ...] = ("n", "success", "recall", "precision", "f1", "iou", "iou_ge", "f1_ge")
DETECTION_CELLS: dict[str, str] = {
    "R": "recall",
    "P": "precision",
    "F1": "f1",
    "IoU": "iou",
    "SR": "success",
    "IoU>0.5": "iou_ge",
    "F1>0.5": "f1_ge",
}
# T/L and A/D: sums and counts over successes (finite and infinite errors apart: a weight of 0 times inf
# would be NaN), and the MRE bucket counts
MEASURE_STATS: tuple[str, ...] = (
    "n", "success", "mae_sum", "mae_count", "mae_inf", "mre_sum", "mre_count", "mre_inf", "lt1", "lt2", "lt3",
)  # fmt: skip
MEASURE_ROW_CELLS: tuple[str, ...] = ("MAE", "MRE", "SR", "MRE<0.1")
MEASURE_DETAIL_CELLS: tuple[str, ...] = (*MEASURE_ROW_CELLS, "MRE<0.2", "MRE<0.3")
TL_GROUP = "tl"


@dataclass(frozen=True)
class FamilySamples:
    """The re-scored samples of one family of one model, with their grouping key and volume cluster."""

    keys: Sequence[str]
    samples: Sequence[Mapping[str, Any]]
    clusters: Sequence[str]


def check_ci_level(level: Any) -> float:
    """``level`` as a float strictly between 0 and 1.

    Raises:
        ValueError: anything else (e.g. 95 instead of 0.95).
    """
    try:
        value = float(level)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 < value < 1.0:
        raise ValueError(f"ci must be a confidence level strictly between 0 and 1, e.g. 0.95; got {level!r}")
    return value


def _detection_stats(sample: Mapping[str, Any]) -> list[float]:
    metrics = sample.get("metrics") or {}
    ok = bool(sample.get("success"))
    values = [0.0 if not ok or is_nan(metrics.get(n)) else float(metrics[n]) for n in ("recall", "precision")]
    f1 = 0.0 if not ok or is_nan(metrics.get("f1")) else float(metrics["f1"])
    iou = 0.0 if not ok or is_nan(metrics.get("iou")) else float(metrics["iou"])
    return [1.0, float(ok), *values, f1, iou, float(iou >= THRESHOLD), float(f1 >= THRESHOLD)]


def _measure_stats(sample: Mapping[str, Any]) -> list[float]:
    metrics = sample.get("metrics") or {}
    ok = bool(sample.get("success"))
    out = [1.0, float(ok)]
    for name in ("mae", "mre"):
        value = metrics.get(name)
        if not ok or is_nan(value):
            out += [0.0, 0.0, 0.0]
        elif math.isinf(value):
            out += [0.0, 0.0, 1.0]
        else:
            out += [float(value), 1.0, 0.0]
    mre = metrics.get("mre")
    usable = ok and not is_nan(mre)
    # bucket min(int(MRE*10), 9) <= j  <=>  MRE*10 < j + 1 for MRE >= 0; inf lands in bucket 9
    out += [float(usable and mre * 10 < j + 1) for j in range(3)]
    return out


@dataclass
class _Family:
    """One family prepared for weighted sums: per key, the (cluster, summed statistics) pairs."""

    keys: list[str]
    pairs: list[tuple[np.ndarray, np.ndarray]]  # per key: cluster indices (P,), statistics (P, S)
    key_clusters: list[set[int]]


def _prepare(family: str, data: FamilySamples, cluster_index: Mapping[str, int]) -> _Family:
    extract = _detection_stats if family == "detection" else _measure_stats
    sums: dict[str, dict[int, list[float]]] = {}
    for key, sample, cluster in zip(data.keys, data.samples, data.clusters):
        if sample.get("excluded"):
            continue
        stats = extract(sample)
        per_key = sums.setdefault(key, {})
        index = cluster_index[cluster]
        if index in per_key:
            per_key[index] = [a + b for a, b in zip(per_key[index], stats)]
        else:
            per_key[index] = stats
    keys = sorted(sums)
    pairs = [
        (np.fromiter(sums[k], dtype=np.intp), np.array(list(sums[k].values()), dtype=np.float64)) for k in keys
    ]
    return _Family(keys=keys, pairs=pairs, key_clusters=[set(sums[k]) for k in keys])


def _totals(family: _Family, weights: np.ndarray, stats: int) -> np.ndarray:
    """Weighted statistic sums, shape (replicates, keys, statistics)."""
    out = np.zeros((weights.shape[0], len(family.keys), stats))
    for u, (clusters, values) in enumerate(family.pairs):
        out[:, u, :] = weights[:, clusters] @ values
    return out


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def _weighted_rows(values: np.ndarray, n: np.ndarray, used: np.ndarray) -> np.ndarray:
    """``sum N*m / sum N`` over the used keys with finite m (as the leaderboard rows); NaN when none. (b, U) -> (b,)."""
    valid = used & np.isfinite(values)
    numerator = np.where(valid, n * np.where(valid, values, 0.0), 0.0).sum(axis=1)
    denominator = np.where(valid, n, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


Cells = dict[tuple[str, str, str], np.ndarray]  # (kind "row"|"detail", group or key, column) -> (b,)
Members = dict[str, np.ndarray]  # row group -> (b, U) membership


def _detection_cells(
    family: _Family, totals: np.ndarray, min_group_size: int, group_of: Callable[[str], str | None]
) -> tuple[Cells, Members]:
    cells: Cells = {}
    members: Members = {}
    n = totals[:, :, 0]
    index = {name: j for j, name in enumerate(DETECTION_STATS)}
    for u, key in enumerate(family.keys):
        for column, stat in DETECTION_CELLS.items():
            cells[("detail", key, column)] = _ratio(totals[:, u, index[stat]], n[:, u]) * 100.0
    groups = [group_of(key) for key in family.keys]
    for group in sorted({g for g in groups if g is not None}):
        in_group = np.array([g == group for g in groups])
        in_row = in_group[None, :] & (n >= min_group_size) & (n > 0)
        members[group] = in_row
        denominator = np.where(in_row, n, 0.0).sum(axis=1)
        for column, stat in DETECTION_CELLS.items():
            numerator = np.where(in_row, totals[:, :, index[stat]], 0.0).sum(axis=1)
            cells[("row", group, column)] = _ratio(numerator, denominator) * 100.0
    return cells, members


def _measure_values(totals: np.ndarray) -> dict[str, np.ndarray]:
    """Per-key cells (b, U) in leaderboard units, plus ``N``."""
    t = {name: totals[:, :, j] for j, name in enumerate(MEASURE_STATS)}
    out = {"N": t["n"]}
    for column, prefix, scale in (("MAE", "mae", 1.0), ("MRE", "mre", 100.0)):
        count = t[f"{prefix}_count"] + t[f"{prefix}_inf"]
        mean = _ratio(t[f"{prefix}_sum"], t[f"{prefix}_count"])
        out[column] = np.where(count > 0, np.where(t[f"{prefix}_inf"] > 0, np.inf, mean), np.nan) * scale
    out["SR"] = _ratio(t["success"], t["n"]) * 100.0
    for j, column in enumerate(("MRE<0.1", "MRE<0.2", "MRE<0.3"), start=1):
        out[column] = _ratio(t[f"lt{j}"], t["n"]) * 100.0
    return out


def _measure_cells(
    family: _Family, totals: np.ndarray, rows: Sequence[tuple[str, np.ndarray]], drop_zero_success: bool
) -> tuple[Cells, Members]:
    cells: Cells = {}
    members: Members = {}
    values = _measure_values(totals)
    n = values["N"]
    for u, key in enumerate(family.keys):
        for column in MEASURE_DETAIL_CELLS:
            cells[("detail", key, column)] = values[column][:, u]
    for group, selected in rows:
        used = selected[None, :] & (n > 0)
        if drop_zero_success:  # T/L v1 quirk: a label without a finite avgMRE leaves the row entirely
            used = used & np.isfinite(values["MRE"])
        members[group] = used
        for column in MEASURE_ROW_CELLS:
            cells[("row", group, column)] = _weighted_rows(values[column], n, used)
    return cells, members


def _evaluate(
    prepared: Mapping[str, _Family],
    weights: np.ndarray,
    min_group_size: int,
    detection_group: Callable[[str], str | None],
    ad_group: Callable[[str], str | None],
    ad_overall_group: str,
) -> tuple[dict[str, Cells], dict[str, Members]]:
    """Every cell of every family for a block of cluster weights (replicates, K)."""
    cells: dict[str, Cells] = {}
    members: dict[str, Members] = {}
    for name, family in prepared.items():
        if not family.keys:
            cells[name], members[name] = {}, {}
            continue
        if name == "detection":
            totals = _totals(family, weights, len(DETECTION_STATS))
            cells[name], members[name] = _detection_cells(family, totals, min_group_size, detection_group)
            continue
        totals = _totals(family, weights, len(MEASURE_STATS))
        if name == "tl":
            rows = [(TL_GROUP, np.ones(len(family.keys), dtype=bool))]
        else:
            groups = [ad_group(key) for key in family.keys]
            rows = [
                (group, np.array([g == group for g in groups]))
                for group in dict.fromkeys(g for g in groups if g is not None)
            ]
            rows.append((ad_overall_group, np.ones(len(family.keys), dtype=bool)))
        cells[name], members[name] = _measure_cells(family, totals, rows, drop_zero_success=name == "tl")
    return cells, members


def _interval(replicates: np.ndarray, level: float) -> list[float] | None:
    defined = replicates[~np.isnan(replicates)]
    if defined.size == 0:
        return None
    alpha = 1.0 - level
    low, high = np.quantile(defined, [alpha / 2.0, 1.0 - alpha / 2.0], method="inverted_cdf")
    return [float(low), float(high)]


def _cluster_weights(rng: np.random.Generator, replicates: int, clusters: int) -> np.ndarray:
    """(replicates, clusters) draw counts: each replicate draws ``clusters`` clusters with replacement."""
    draws = rng.integers(0, clusters, size=(replicates, clusters))
    offsets = np.arange(replicates)[:, None] * clusters
    counts = np.bincount((draws + offsets).ravel(), minlength=replicates * clusters)
    return counts.reshape(replicates, clusters).astype(np.float64)


def bootstrap_model(
    families: Mapping[str, FamilySamples],
    *,
    level: float,
    iterations: int = DEFAULT_CI_ITERATIONS,
    seed: int = DEFAULT_CI_SEED,
    stream: str = "",
    min_group_size: int = 50,
    detection_group: Callable[[str], str | None],
    ad_group: Callable[[str], str | None],
    ad_overall_group: str = "ad_overall",
) -> tuple[dict[str, dict[str, Any]], int]:
    """Bootstrap intervals of one model's cells.

    Args:
        families: ``{"detection" | "tl" | "ad": FamilySamples}``; excluded samples are ignored.
        level: confidence level in (0, 1).
        iterations: number of replicates.
        seed, stream: the generator is ``default_rng([seed, crc32(stream)])`` (stream = the model key).
        min_group_size: detection region floor, re-applied in every replicate.
        detection_group: region key -> ``anatomy`` / ``tumor_lesion`` / ``None`` (excluded key).
        ad_group: A/D label key -> Table 4 row or ``None``; ``ad_overall_group`` pools every label.

    Returns:
        ``({family: {"rows": {group: entry}, "details": {key: entry}}}, K)`` where ``entry`` is
        ``{"ci": {column: [low, high] | None}, "clusters": number of volumes behind the observed cell}``.

    Raises:
        ValueError: ``level`` outside (0, 1) or fewer than 2 iterations.
    """
    level = check_ci_level(level)
    if int(iterations) < 2:
        raise ValueError(f"iterations must be >= 2, got {iterations!r}")
    names = sorted(
        {c for data in families.values() for c, s in zip(data.clusters, data.samples) if not s.get("excluded")}
    )
    cluster_index = {name: i for i, name in enumerate(names)}
    prepared = {family: _prepare(family, data, cluster_index) for family, data in families.items()}
    groups = (detection_group, ad_group, ad_overall_group)
    out: dict[str, dict[str, Any]] = {family: {"rows": {}, "details": {}} for family in families}
    if not names:
        return out, 0
    _, observed_members = _evaluate(prepared, np.ones((1, len(names))), min_group_size, *groups)
    rng = np.random.default_rng([int(seed), zlib.crc32(stream.encode("utf-8"))])
    blocks: dict[str, dict[tuple[str, str, str], list[np.ndarray]]] = {family: {} for family in prepared}
    done = 0
    while done < iterations:
        size = min(BLOCK, iterations - done)
        weights = _cluster_weights(rng, size, len(names))
        cells, _ = _evaluate(prepared, weights, min_group_size, *groups)
        for family, family_cells in cells.items():
            for cell, values in family_cells.items():
                blocks[family].setdefault(cell, []).append(values)
        done += size
    for family, data in prepared.items():
        for (kind, name, column), parts in blocks[family].items():
            section = out[family]["rows" if kind == "row" else "details"]
            entry = section.setdefault(name, {"ci": {}, "clusters": 0})
            entry["ci"][column] = _interval(np.concatenate(parts), level)
        for u, key in enumerate(data.keys):
            out[family]["details"][key]["clusters"] = len(data.key_clusters[u])
        for group, membership in observed_members[family].items():
            used = set().union(*(data.key_clusters[u] for u in np.flatnonzero(membership[0])))
            out[family]["rows"][group]["clusters"] = len(used)
    return out, len(names)
