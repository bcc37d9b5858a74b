"""Spacing sensitivity: does the answer follow the stated pixel size? (docs/spacing-test.md)

A spacing variant repeats a base T/L or A/D subtask with the stated pixel size multiplied by k (GT lengths
too, angles unchanged). Its record carries ``spacing = {"k", "base_task"}``. Each variant record is paired
with the base subtask's record of the same doc (task + row, same config, image and slice), the same model
and the same ``settings_id``; every other base record is never paired and counts as unpaired. For a pair
with both answers parsed and positive, the **elasticity** is

    e = log(a_k / a_1) / log(k)

(a_1 the base answer, a_k the variant answer; T/L: the major axis, the minor reported too). e = 1: the
answer scales with the stated spacing; e = 0: it ignores it. For angles (the control) the statistic is
``|a_k - a_1|`` in degrees, which should stay near 0. Pairs with a zero or negative (or non-finite) answer
are skipped and counted.

Rows are per model and group (``tl``, ``distance``, ``angle``) with the median and IQR of e, the share of
pairs with e in [0.5, 1.5], MRE at every k (k = 1 from the base records), and, with ``ci``, percentile
bootstrap intervals resampling whole volumes (``dataset/image_file_rel``), like :mod:`.bootstrap`.
This module is pure: the leaderboard passes it re-scored items and options.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import RecordError

GROUPS: tuple[str, ...] = ("tl", "distance", "angle")
GROUP_TITLES: dict[str, str] = {"tl": "T/L (major axis)", "distance": "A/D distances", "angle": "A/D angles (control)"}
SPACING_FAMILIES: tuple[str, ...] = ("tl", "ad")
E_BAND: tuple[float, float] = (0.5, 1.5)
BLOCK = 200


@dataclass(frozen=True)
class Item:
    """One re-scored record: the record, its re-scored sample (``success``, ``excluded``, ``metrics``,
    ``parse``), where it came from and its model key."""

    record: Mapping[str, Any]
    sample: Mapping[str, Any]
    where: str
    model: str


@dataclass
class _Row:
    model: str
    group: str
    ks: set[float] = field(default_factory=set)
    e: list[float] = field(default_factory=list)
    e_minor: list[float] = field(default_factory=list)
    change: list[float] = field(default_factory=list)
    clusters: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: {"unpaired": 0, "unparsable": 0, "nonpositive": 0, "excluded": 0}
    )
    unpaired: dict[str, int] = field(default_factory=lambda: {"no_base": 0, "settings": 0, "doc": 0})
    mre: dict[float, list[float]] = field(default_factory=dict)
    by_k: dict[float, list[float]] = field(default_factory=dict)


def is_spacing_record(record: Mapping[str, Any]) -> bool:
    """True for records written by a spacing variant (a non-null ``spacing`` field)."""
    return record.get("spacing") is not None


def spacing_of(record: Mapping[str, Any], where: str) -> tuple[float, str]:
    """(k, base task) of a spacing record.

    Raises:
        RecordError: ``spacing.k`` not a finite number > 0 or ``spacing.base_task`` not a task name.
    """
    spacing = record.get("spacing")
    k = spacing.get("k") if isinstance(spacing, Mapping) else None
    base = spacing.get("base_task") if isinstance(spacing, Mapping) else None
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k <= 0 or k == 1:
        raise RecordError(f"{where}: field 'spacing.k' is {k!r}, expected a finite number > 0 other than 1")
    if not isinstance(base, str) or not base:
        raise RecordError(f"{where}: field 'spacing.base_task' is {base!r}, expected the base subtask name")
    if record["family"] not in SPACING_FAMILIES:
        raise RecordError(f"{where}: a spacing record of family {record['family']!r}; only tl and ad have variants")
    return float(k), base


def group_of(record: Mapping[str, Any]) -> str:
    """``tl``, ``distance`` or ``angle``."""
    if record["family"] == "tl":
        return "tl"
    return "angle" if record.get("metric_type") == "angle" else "distance"


def elasticity(a_k: float, a_1: float, k: float) -> float:
    """``log(a_k / a_1) / log(k)`` for positive answers and k > 0, k != 1."""
    return math.log(a_k / a_1) / math.log(k) + 0.0  # + 0.0: no -0.0 for k < 1


def _doc(record: Mapping[str, Any]) -> tuple[Any, ...]:
    return (record["config"], record.get("image_file_rel"), record.get("slice_dim"), record.get("slice_idx"))


def _cluster(record: Mapping[str, Any]) -> str:
    return f"{record['dataset']}/{record.get('image_file_rel')}"


def _answer(item: Item) -> list[float] | None:
    """The values the leaderboard's scorer parsed (`scoring.score_sample`), None for a parse failure."""
    values = item.sample.get("parsed")
    return list(values) if item.sample["success"] and values is not None else None


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _iqr(values: np.ndarray) -> float:
    if values.size == 0:
        return math.nan
    low, high = np.quantile(values, [0.25, 0.75])
    return float(high - low) + 0.0


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else math.nan


def _share(values: np.ndarray) -> float:
    if values.size == 0:
        return math.nan
    return float(np.mean((values >= E_BAND[0]) & (values <= E_BAND[1])) * 100.0)


STATISTICS = {
    "e median": ("e", _median),
    "e IQR": ("e", _iqr),
    "e in [0.5,1.5] %": ("e", _share),
    "minor e median": ("e_minor", _median),
    "minor e IQR": ("e_minor", _iqr),
    "angle |d| median": ("change", _median),
}


def _intervals(row: _Row, level: float, iterations: int, seed: int) -> tuple[dict[str, list[float] | None], int]:
    """Percentile bootstrap over the row's volumes (pairs of one volume are drawn together)."""
    names = sorted(set(row.clusters))
    if not names:
        return {}, 0
    index = np.array([names.index(c) for c in row.clusters])
    data = {"e": np.array(row.e), "e_minor": np.array(row.e_minor), "change": np.array(row.change)}
    rng = np.random.default_rng([int(seed), zlib.crc32(f"{row.model}|spacing|{row.group}".encode())])
    replicates: dict[str, list[float]] = {column: [] for column in STATISTICS}
    done = 0
    while done < iterations:
        size = min(BLOCK, iterations - done)
        draws = rng.integers(0, len(names), size=(size, len(names)))
        for draw in draws:
            weights = np.bincount(draw, minlength=len(names))[index]
            for column, (source, statistic) in STATISTICS.items():
                values = data[source]
                if values.size != weights.size:
                    continue
                replicates[column].append(statistic(np.repeat(values, weights)))
        done += size
    alpha = 1.0 - level
    out: dict[str, list[float] | None] = {}
    for column, values in replicates.items():
        defined = np.array([v for v in values if not math.isnan(v)])
        if defined.size == 0:
            out[column] = None
            continue
        low, high = np.quantile(defined, [alpha / 2.0, 1.0 - alpha / 2.0], method="inverted_cdf")
        out[column] = [float(low), float(high)]
    return out, len(names)


def _pair_variant(
    item: Item,
    base_index: Mapping[tuple[str, str, int], Item],
    rows: dict[tuple[str, str], _Row],
    missing: dict[tuple[str, str], int],
    base_tasks: dict[tuple[str, str], set[str]],
) -> None:
    """Pair one variant record with its base-task record and add the pair (or why it has none) to its row."""
    record = item.record
    k, base_task = spacing_of(record, item.where)
    group = group_of(record)
    row = rows.setdefault((item.model, group), _Row(item.model, group))
    row.ks.add(k)
    base_tasks.setdefault((item.model, group), set()).add(base_task)
    if item.sample.get("excluded"):
        row.counts["excluded"] += 1
        return
    if item.sample.get("success"):
        row.mre.setdefault(k, []).append(item.sample["metrics"].get("mre"))
    base = base_index.get((item.model, base_task, int(record["row"])))
    if base is None:
        row.counts["unpaired"] += 1
        row.unpaired["no_base"] += 1
        missing[(item.model, base_task)] = missing.get((item.model, base_task), 0) + 1
        return
    if str(base.record["settings_id"]) != str(record["settings_id"]):
        row.counts["unpaired"] += 1
        row.unpaired["settings"] += 1
        return
    if _doc(base.record) != _doc(record):
        row.counts["unpaired"] += 1
        row.unpaired["doc"] += 1
        return
    if base.sample.get("excluded"):
        row.counts["excluded"] += 1
        return
    a_k, a_1 = _answer(item), _answer(base)
    if a_k is None or a_1 is None:
        row.counts["unparsable"] += 1
        return
    if not all(math.isfinite(v) for v in (*a_k, *a_1)):
        row.counts["nonpositive"] += 1
        return
    if group == "angle":
        row.change.append(abs(a_k[0] - a_1[0]))
    else:
        if not all(v > 0 for v in (*a_k, *a_1)):
            row.counts["nonpositive"] += 1
            return
        row.e.append(elasticity(a_k[0], a_1[0], k))
        row.by_k.setdefault(k, []).append(row.e[-1])
        if group == "tl":
            row.e_minor.append(elasticity(a_k[1], a_1[1], k))
    row.clusters.append(_cluster(record))


def _table_row(
    row: _Row, base_mre: list[float], mre_ks: list[float], ci: float | None, ci_iterations: int, ci_seed: int
) -> dict[str, Any]:
    """One output row of the table (see :func:`spacing_table`)."""
    model, group = row.model, row.group
    data = {"e": np.array(row.e), "e_minor": np.array(row.e_minor), "change": np.array(row.change)}
    entry: dict[str, Any] = {
        "model": model,
        "group": group,
        "k": ",".join(f"{k:g}" for k in sorted(row.ks)),
        "pairs": len(row.clusters),
        "unpaired": row.counts["unpaired"],
        "unparsable": row.counts["unparsable"],
        "skipped": row.counts["nonpositive"],
    }
    for column, (source, statistic) in STATISTICS.items():
        entry[column] = statistic(data[source])
    for k in mre_ks:
        values = base_mre if k == 1.0 else row.mre.get(k, [])
        entry[f"MRE k={k:g}"] = _mean(values) * 100.0
    entry["pair_counts"] = {
        **row.counts,
        "unpaired_no_base": row.unpaired["no_base"],
        "unpaired_settings": row.unpaired["settings"],
        "unpaired_doc": row.unpaired["doc"],
    }
    entry["by_k"] = {f"{k:g}": _median(np.array(v)) for k, v in sorted(row.by_k.items())}
    if ci is not None:
        entry["ci"], entry["clusters"] = _intervals(row, float(ci), int(ci_iterations), int(ci_seed))
    return entry


def spacing_table(
    variants: Sequence[Item],
    bases: Sequence[Item],
    *,
    ci: float | None = None,
    ci_iterations: int = 1000,
    ci_seed: int = 0,
) -> dict[str, Any]:
    """The Spacing sensitivity table.

    Args:
        variants: re-scored spacing-variant records (one per model, task and row).
        bases: re-scored records of every other task (one per model, config and row).
        ci: confidence level of the volume bootstrap, or None.
        ci_iterations, ci_seed: bootstrap replicates and seed.

    Returns:
        ``{"rows", "ks", "missing_base", "definition"}``. Each row: ``model``, ``group``, ``k`` (the factors
        seen), ``pairs``, ``unpaired``, ``unparsable``, ``skipped`` (a zero, negative or non-finite answer),
        the statistics of :data:`STATISTICS`, ``MRE k=<k>`` (percent, mean over successes) for k = 1 and
        every variant k, ``pair_counts`` and ``by_k`` (median e per k); with ``ci`` also ``ci`` and
        ``clusters``. ``missing_base`` lists, per model, the base subtasks to run.

    Raises:
        RecordError: a malformed ``spacing`` field.
    """
    base_index: dict[tuple[str, str, int], Item] = {}
    for item in bases:
        base_index[(item.model, str(item.record["task"]), int(item.record["row"]))] = item
    rows: dict[tuple[str, str], _Row] = {}
    missing: dict[tuple[str, str], int] = {}
    base_tasks: dict[tuple[str, str], set[str]] = {}
    for item in variants:
        _pair_variant(item, base_index, rows, missing, base_tasks)
    base_mre: dict[tuple[str, str], list[float]] = {}
    for item in bases:
        for (model, group), tasks in base_tasks.items():
            if item.model == model and str(item.record["task"]) in tasks and group_of(item.record) == group:
                if item.sample.get("success") and not item.sample.get("excluded"):
                    base_mre.setdefault((model, group), []).append(item.sample["metrics"].get("mre"))
    mre_ks = sorted({1.0, *(k for row in rows.values() for k in row.ks)})
    out_rows = []
    for (model, group), row in sorted(rows.items(), key=lambda kv: (GROUPS.index(kv[0][1]), kv[0][0])):
        out_rows.append(
            _table_row(row, base_mre.get((model, group), []), mre_ks, ci, int(ci_iterations), int(ci_seed))
        )
    return {
        "rows": out_rows,
        "ks": [f"{k:g}" for k in mre_ks],
        "missing_base": [
            {"model": model, "base_task": task, "records": count} for (model, task), count in sorted(missing.items())
        ],
        "definition": "e = log(a_k / a_1) / log(k) per pair (a_1: base-task answer, a_k: answer with the stated "
        "pixel size x k); e = 1 follows the stated spacing, e = 0 ignores it; angles: |a_k - a_1| in degrees",
    }
