"""Leaderboard: paper Tables 2-4 rows rebuilt from per-sample records (docs/reference.md §6).

Input records are the ``mv_record`` dicts that the MedVision tasks write into lmms-eval samples files
(``*_samples_medvision_*.jsonl``, needs ``--log_samples``; read and validated by :mod:`.records`). Every
record is re-scored from its ``response`` and ``target``; the per-sample metrics stored at run time are not used.
Rows are in the paper's units (percent; mm or degrees) and NaN is written as ``None``; ``inf`` from a float32
overflow is kept.

Hygiene: the runs of one model (e.g. one per family) merge into one row; one (model, task) run twice (two
samples files) with different results is an error unless ``latest`` (newest file) or ``last_wins``; one table
must not mix annotation versions of a dataset, data/image settings or scoring switches unless ``allow_mixed``.
Optional: cluster-bootstrap intervals (:mod:`.bootstrap`) and the box-size analysis (:mod:`.boxsize`).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .bootstrap import DEFAULT_CI_ITERATIONS, DEFAULT_CI_SEED, FamilySamples, bootstrap_model, check_ci_level
from .boxsize import DEFAULT_BOXSIZE_DRAWS, DEFAULT_BOXSIZE_SEED, boxsize_analysis
from .errors import RecordError
from .hygiene import check_row_sources, drop_warnings
from .labels import (
    UNKNOWN_LABEL_POLICIES,
    ad_label_key,
    is_excluded_region,
    is_tumor_lesion_region,
    region_key,
    tl_label_key,
)
from .options import bool_word
from .paper_notes import check_paper_model, near_zero_note, unpublished_models_warning
from .parse import PARSE_MODES
from .records import (
    SOURCE_FIELD,
    _cyclic_gc_paused,
    _version_tuple,
    installed_plugin_version,
    validate_record,
)
from .reduce import aggregate_detection, aggregate_measure
from .reference import PAPER_HEADLINE_COUNTS, model_key_for, paper_rows
from .scores import is_nan
from .scoring import AD_NEAR_ZERO_GT_THRESHOLD, FAMILY_K, ScoringSwitches, score_sample
from .spacing import Item as SpacingItem
from .spacing import is_spacing_record, spacing_table

__all__ = ["LeaderboardOptions", "RecordError", "build_leaderboard"]

PARSE_OPTIONS: tuple[str, ...] = ("as-run", *PARSE_MODES)
PRESETS: tuple[str, ...] = ("v1", "paper")
# family -> (option of LeaderboardOptions, recorded setting, CLI flag) of the family's scoring switch
_FAMILY_SWITCH: dict[str, tuple[str, str, str]] = {
    "detection": ("box_fix", "box_fix", "--box-fix"),
    "tl": ("tl_remove_multicluster", "tl_remove_multicluster", "--tl-remove-multicluster"),
    "ad": ("ad_drop_near_zero", "ad_drop_near_zero", "--ad-drop-near-zero"),
}
DETECTION_GROUPS: tuple[str, ...] = ("anatomy", "tumor_lesion")
AD_GROUPS: tuple[tuple[str, str], ...] = (
    ("ceph_distance", "Ceph-Biometrics-400_distance"),
    ("ceph_angle", "Ceph-Biometrics-400_angle"),
    ("feta_distance", "FeTA24_distance"),
)
AD_OVERALL_GROUP = "ad_overall"
# settings that must agree across every record of one table (data, image and sample selection); the prompt,
# parse and geometry settings are model defaults and may differ between models (never within one model)
TABLE_SETTINGS: tuple[str, ...] = ("intensity", "sample_cap", "filtering")
SWITCH_BY_FAMILY: dict[str, str] = {
    "detection": "box_fix",
    "tl": "tl_remove_multicluster",
    "ad": "ad_drop_near_zero",
}
RUN_TIMESTAMP = re.compile(r"^(\d{8}_\d{6})_samples_")
RUN_TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"
# leaderboard column -> (aggregate key, scale to paper units)
DETECTION_COLUMNS: dict[str, tuple[str, float]] = {
    "R": ("recall", 100.0),
    "P": ("precision", 100.0),
    "F1": ("f1", 100.0),
    "IoU": ("iou", 100.0),
    "SR": ("success_rate", 100.0),
    "IoU>0.5": ("iou>0.5", 100.0),
    "F1>0.5": ("f1>0.5", 100.0),
}
MEASURE_COLUMNS: dict[str, tuple[str, float]] = {
    "MAE": ("avgMAE", 1.0),
    "MRE": ("avgMRE", 100.0),
    "SR": ("success_rate", 100.0),
    "MRE<0.1": ("MRE<0.1", 100.0),
}
MEASURE_DETAIL_COLUMNS: dict[str, tuple[str, float]] = {
    **MEASURE_COLUMNS,
    "MRE<0.2": ("MRE<0.2", 100.0),
    "MRE<0.3": ("MRE<0.3", 100.0),
}
NAN = float("nan")


# --------------------------------------------------------------------------------------------- helpers
def _where(record: Mapping[str, Any], index: int) -> str:
    return str(record.get(SOURCE_FIELD) or f"record {index}")


def _flag(value: Any) -> bool:
    """A recorded switch: true only for a true word (anything else counts as off, as recorded before)."""
    return bool_word(value) is True if isinstance(value, str) else bool(value)


def _recorded_setting(record: Mapping[str, Any], name: str, where: str, flag: str) -> Any:
    settings = record["settings"]
    if name not in settings:
        raise RecordError(f"{where}: field 'settings.{name}' is missing; pass {flag} to choose it explicitly")
    return settings[name]


def _weighted_mean(pairs: Iterable[tuple[int, float]]) -> float:
    """``sum(N*m) / sum(N)`` over pairs with N > 0 and finite m (docs/reference.md §6.2-§6.4; an inf stays in its own
    region/label mean, §5.5, but leaves the group row); NaN if none."""
    total, weight = 0.0, 0
    for n, value in pairs:
        if n > 0 and value is not None and math.isfinite(value):
            total += n * value
            weight += n
    return total / weight if weight else NAN


def _columns(aggregate: Mapping[str, float], columns: Mapping[str, tuple[str, float]]) -> dict[str, float]:
    return {name: aggregate[key] * scale for name, (key, scale) in columns.items()}


def _group_columns(
    aggregates: list[Mapping[str, float]], columns: Mapping[str, tuple[str, float]]
) -> dict[str, float]:
    return {
        name: _weighted_mean((int(a["N"]), a[key]) for a in aggregates) * scale
        for name, (key, scale) in columns.items()
    }


def _json_ready(value: Any) -> Any:
    """NaN -> None, recursively; inf is kept."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


@dataclass
class LeaderboardOptions:
    """Validated options of :func:`build_leaderboard` (``None`` switches mean "as recorded")."""

    parse: str = "as-run"
    box_fix: bool | None = None
    ad_drop_near_zero: bool | None = None
    tl_remove_multicluster: bool | None = None
    preset: str = "v1"
    min_group_size: int = 50
    allow_demo: bool = False
    allow_mixed: bool = False
    allow_multi_instance: bool = False
    last_wins: bool = False
    latest: bool = False
    unknown_label: str = "error"
    paper: bool = False
    paper_model: str | None = None
    ci: float | None = None
    ci_iterations: int = DEFAULT_CI_ITERATIONS
    ci_seed: int = DEFAULT_CI_SEED
    boxsize: bool = False
    boxsize_seed: int = DEFAULT_BOXSIZE_SEED
    boxsize_draws: int = DEFAULT_BOXSIZE_DRAWS

    def __post_init__(self) -> None:
        if self.parse not in PARSE_OPTIONS:
            raise ValueError(f"parse must be one of {', '.join(PARSE_OPTIONS)}, got {self.parse!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.unknown_label not in UNKNOWN_LABEL_POLICIES:
            raise ValueError(
                f"unknown_label must be one of {', '.join(UNKNOWN_LABEL_POLICIES)}, "
                f"got {self.unknown_label!r}"
            )
        if int(self.min_group_size) < 0:
            raise ValueError(f"min_group_size must be >= 0, got {self.min_group_size!r}")
        if self.ci is not None:
            check_ci_level(self.ci)
            if int(self.ci_iterations) < 2:
                raise ValueError(f"ci_iterations must be >= 2, got {self.ci_iterations!r}")
        if int(self.boxsize_draws) < 1:
            raise ValueError(f"boxsize_draws must be >= 1, got {self.boxsize_draws!r}")
        if self.paper_model is not None:
            check_paper_model(self.paper_model)
            self.paper = True
        if self.preset == "paper":
            self.tl_remove_multicluster = True
            self.ad_drop_near_zero = True


# ------------------------------------------------------------------------------------------ re-scoring
def _rescore(record: Mapping[str, Any], where: str, opts: LeaderboardOptions) -> dict[str, Any]:
    """Parse and score one record under the options (`scoring.score_sample`, the run-time scorer); returns
    ``{success, parsed, excluded, exclusion_reason, metrics, parse, switch}``."""
    family = record["family"]
    mode = opts.parse
    if mode == "as-run":
        mode = _recorded_setting(record, "parse", where, "--parse last_k|answer_tag")
        if mode not in PARSE_MODES:
            raise RecordError(
                f"{where}: field 'settings.parse' is {mode!r}, expected one of {', '.join(PARSE_MODES)}; "
                "pass --parse to choose one"
            )
    option, setting, flag = _FAMILY_SWITCH[family]
    switch = getattr(opts, option)
    if switch is None:
        switch = _flag(_recorded_setting(record, setting, where, flag))
    switches = ScoringSwitches(parse=mode, **{setting: bool(switch)})
    scored = score_sample(family, record["response"], record["target"], switches, record["multicluster_listed"], where)
    return {
        "success": scored["success"],
        "parsed": scored["parsed"],
        "excluded": scored["excluded"],
        "exclusion_reason": scored["exclusion_reason"],
        "metrics": scored["metrics"],
        "parse": mode,
        "switch": bool(switch),
    }


# ----------------------------------------------------------------------------------------- hygiene
def _refuse(records: list[dict[str, Any]], opts: LeaderboardOptions) -> None:
    if not opts.allow_demo:
        demo = [i for i, r in enumerate(records) if r["data_root_kind"] == "demo"]
        if demo:
            raise RecordError(
                f"{len(demo)} record(s) come from the demo (phantom) data root (data_root_kind 'demo', e.g. "
                f"{_where(records[demo[0]], demo[0])}); demo numbers are not benchmark results; "
                "pass --allow-demo to include them"
            )
    if not opts.allow_multi_instance:
        multi = [i for i, r in enumerate(records) if r["multi_instance"]]
        if multi:
            raise RecordError(
                f"{len(multi)} record(s) are multi-instance rows (MedVision_DISABLE_SAMPLE_FILTERING, e.g. "
                f"{_where(records[multi[0]], multi[0])}), which the paper's tables exclude; "
                "pass --allow-multi-instance to include them"
            )


def _source_file(record: Mapping[str, Any]) -> str | None:
    source = record.get(SOURCE_FIELD)
    return str(source).rsplit(":", 1)[0] if source else None


def run_time(path: str | Path) -> float:
    """When a samples file was written: the ``YYYYMMDD_HHMMSS`` prefix lmms-eval gives its file names (local
    time), else the file's modification time; seconds since the epoch."""
    path = Path(path)
    match = RUN_TIMESTAMP.match(path.name)
    if match:
        try:
            return time.mktime(time.strptime(match.group(1), RUN_TIMESTAMP_FORMAT))
        except (ValueError, OverflowError):
            pass
    try:
        return path.stat().st_mtime
    except OSError:
        return -math.inf


def _run_contents(records: list[dict[str, Any]], indices: list[int]) -> dict[tuple[str, int], tuple[Any, Any]]:
    return {(records[i]["config"], records[i]["row"]): (records[i]["response"], records[i]["target"]) for i in indices}


def _describe_runs(model_key: str, task: str, runs: dict[str, dict[tuple[str, int], tuple[Any, Any]]]) -> str:
    union = set().union(*runs.values())
    conflicting = sorted(k for k in union if len({json.dumps(c[k]) for c in runs.values() if k in c}) > 1)
    partial = sorted(k for k in union if any(k not in c for c in runs.values()))
    parts = []
    if conflicting:
        config, row = conflicting[0]
        parts.append(f"{len(conflicting)} sample(s) with conflicting responses (e.g. {config} row {row})")
    if partial:
        parts.append(f"{len(partial)} sample(s) present in only some runs")
    sizes = ", ".join(f"{name} ({len(content)} records)" for name, content in runs.items())
    return f"model {model_key} task {task}: {len(runs)} runs {sizes} hold {' and '.join(parts)}"


def _select_runs(
    records: list[dict[str, Any]], keys: list[str], opts: LeaderboardOptions, warnings: list[str]
) -> list[int]:
    """Indices of the records to keep when one (model identity, task) was run more than once.

    A run is one samples file. Identical copies of a run in one folder (a rerun, e.g. after a resume) are
    counted once; the same (model, task) from different folders, or runs that differ, are an error,
    unless ``latest`` (keep the newest file, :func:`run_time`) or ``last_wins`` (keep all; per-sample
    replacement in :func:`_deduplicate`).
    """
    by_task: dict[tuple[str, str], dict[str | None, list[int]]] = {}
    for index, (record, model_key) in enumerate(zip(records, keys)):
        by_task.setdefault((model_key, record["task"]), {}).setdefault(_source_file(record), []).append(index)
    dropped: set[int] = set()
    problems: list[str] = []
    conflicting_files: set[str] = set()
    identical = 0
    for (model_key, task), files in by_task.items():
        if len(files) < 2:
            continue
        if opts.latest:
            times = {name: (run_time(name) if name else -math.inf) for name in files}
            newest = max(times.values())
            winners = [name for name, t in times.items() if t == newest]
            if len(winners) > 1:
                raise RecordError(
                    f"model {model_key} task {task}: --latest cannot tell the newest of the runs "
                    f"{', '.join(str(w) for w in winners)} (same timestamp); remove the unwanted one"
                )
            older = [str(name) for name in files if name != winners[0]]
            for name in files:
                if name != winners[0]:
                    dropped.update(files[name])
            warnings.append(
                f"model {model_key} task {task}: kept the newest run {winners[0]}; ignored {len(older)} older "
                f"run(s): {', '.join(older)} (--latest)"
            )
            continue
        runs = {str(name): _run_contents(records, indices) for name, indices in files.items()}
        first, *others = runs.values()
        if all(content == first for content in others):
            if opts.last_wins or len({Path(name).parent for name in runs}) == 1:  # e.g. a resumed run, same folder
                for name in list(files)[1:]:
                    dropped.update(files[name])
                    identical += len(files[name])
                continue
            problems.append(f"model {model_key} task {task}: the same records in {len(runs)} run folders")
            conflicting_files.update(runs)
            continue
        if not opts.last_wins:
            problems.append(_describe_runs(model_key, task, runs))
            conflicting_files.update(runs)
    if problems:
        files_named = sorted(conflicting_files)
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise RecordError(
            f"{len(problems)} model/task pair(s) were run more than once "
            f"(files: {', '.join(files_named)}): {'; '.join(problems[:5])}{more}; one table must not mix runs: "
            "pass --latest to keep each pair's newest run (file-name timestamp, else modification time), or "
            "--last-wins to merge them with later records replacing earlier ones"
        )
    if identical:
        warnings.append(f"{identical} duplicate record(s) with identical responses were counted once")
    return [i for i in range(len(records)) if i not in dropped]


def _deduplicate(
    records: list[dict[str, Any]], keys: list[str], opts: LeaderboardOptions, warnings: list[str]
) -> list[tuple[int, dict[str, Any], str]]:
    """Keep one record per (model identity, config, row); returns ``(index, record, model_key)``."""
    kept: dict[tuple[str, str, int], tuple[int, dict[str, Any], str]] = {}
    conflicts: dict[tuple[str, str, int], list[str]] = {}
    identical = replaced = 0
    for index in _select_runs(records, keys, opts, warnings):
        record, model_key = records[index], keys[index]
        key = (model_key, record["config"], record["row"])
        previous = kept.get(key)
        if previous is None:
            kept[key] = (index, record, model_key)
            continue
        same = previous[1]["response"] == record["response"] and previous[1]["target"] == record["target"]
        if same:
            identical += 1
        elif opts.last_wins:
            replaced += 1
        else:
            conflicts.setdefault(key, [_where(previous[1], previous[0])]).append(_where(record, index))
            continue
        if opts.last_wins:
            kept[key] = (index, record, model_key)
    if conflicts:
        listed = [
            f"{m} {c} row {r}: {', '.join(sources)}" for (m, c, r), sources in list(conflicts.items())[:10]
        ]
        more = f"; and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
        files = sorted({s.rsplit(":", 1)[0] for sources in conflicts.values() for s in sources})
        raise RecordError(
            f"{len(conflicts)} sample(s) have conflicting responses across records of the same model "
            f"(files: {', '.join(files)}): {'; '.join(listed)}{more}; "
            "keep one run per model and config or pass --last-wins"
        )
    if identical:
        warnings.append(f"{identical} duplicate record(s) with identical responses were counted once")
    if replaced:
        warnings.append(f"{replaced} conflicting record(s) were replaced by later ones (--last-wins)")
    return list(kept.values())


def _check_settings(
    model_key: str, items: list[tuple[int, dict[str, Any]]], opts: LeaderboardOptions, warnings: list[str]
) -> None:
    """One model, one ``settings_id``: refused otherwise unless ``allow_mixed``."""
    by_id: dict[str, tuple[int, dict[str, Any]]] = {}
    counts: Counter[str] = Counter()
    for index, record in items:
        settings_id = str(record["settings_id"])
        counts[settings_id] += 1
        by_id.setdefault(settings_id, (index, record))
    if len(counts) <= 1:
        return
    first = [r["settings"] for _, r in by_id.values()]
    names = sorted({k for s in first for k in s})
    differing = [k for k in names if len({json.dumps(s.get(k), sort_keys=True) for s in first}) > 1]
    described = ", ".join(
        f"{sid} ({counts[sid]} records, e.g. {_where(rec, idx)})" for sid, (idx, rec) in by_id.items()
    )
    message = (
        f"model {model_key}: records carry {len(counts)} settings_ids: {described}; "
        f"settings that differ: {', '.join(differing) or 'none recorded'}"
    )
    if not opts.allow_mixed:
        raise RecordError(
            f"{message}; the numbers are not comparable: evaluate each model under one setting or pass "
            "--allow-mixed"
        )
    warnings.append(message)


def _listed(seen: Mapping[str, tuple[set[str], str]]) -> str:
    return " vs ".join(
        f"{value} (model {', '.join(sorted(models))}; e.g. {example})" for value, (models, example) in seen.items()
    )


def _check_comparable(
    scored: Mapping[str, Mapping[str, list[tuple[dict[str, Any], dict[str, Any], str]]]],
    opts: LeaderboardOptions,
    warnings: list[str],
) -> None:
    """Every record of one table must share the data and image settings of :data:`TABLE_SETTINGS`, the data
    root kind and the effective scoring switch of its family; and each dataset must come from one annotation
    version (``plan_version``; different datasets may differ, e.g. under ``MedVision_PLANNER_VERSION=latest``).

    Raises:
        RecordError: naming the table, the field, each value with its models and an example record, unless
            ``allow_mixed`` (then a warning).
    """
    problems: list[str] = []
    for family in FAMILY_K:
        fields = (*TABLE_SETTINGS, "data_root_kind", SWITCH_BY_FAMILY[family])
        combos: dict[tuple[str, tuple[Any, ...]], str] = {}  # (model, values) -> example record
        versions: dict[tuple[str, str, str], str] = {}  # (dataset, plan_version, model) -> example record
        for model_key, families in scored.items():
            for record, sample, where in families.get(family, ()):
                settings = record["settings"]
                values = (
                    *(settings.get(name) for name in TABLE_SETTINGS),
                    record["data_root_kind"],
                    sample["switch"],
                )
                try:
                    combos.setdefault((model_key, values), where)
                except TypeError:  # an unhashable setting value: compare its JSON text
                    combos.setdefault((model_key, tuple(json.dumps(v, sort_keys=True) for v in values)), where)
                version = json.dumps(record.get("plan_version"))
                versions.setdefault((record["dataset"], version, model_key), where)
        for position, name in enumerate(fields):
            seen: dict[str, tuple[set[str], str]] = {}
            for (model_key, values), where in combos.items():
                seen.setdefault(json.dumps(values[position], sort_keys=True), (set(), where))[0].add(model_key)
            if len(seen) > 1:
                problems.append(f"table {family} mixes {name}: {_listed(seen)}")
        by_dataset: dict[str, dict[str, tuple[set[str], str]]] = {}
        for (dataset, version, model_key), where in versions.items():
            by_dataset.setdefault(dataset, {}).setdefault(version, (set(), where))[0].add(model_key)
        for dataset, seen in by_dataset.items():
            if len(seen) > 1:
                listed = _listed(seen)
                problems.append(f"table {family} mixes annotation versions (plan_version) of {dataset}: {listed}")
    if not problems:
        return
    message = "; ".join(problems)
    if not opts.allow_mixed:
        raise RecordError(
            f"{message}; numbers from different annotation versions or switches are not comparable: evaluate "
            "every model under the same settings (or apply the switch to all with its leaderboard flag) or "
            "pass --allow-mixed"
        )
    warnings.append(f"mixed settings accepted (--allow-mixed): {message}")


# ----------------------------------------------------------------------------------------- tables
Item = tuple[dict[str, Any], dict[str, Any], str]  # (record, re-scored sample, where)


def _family_keys(family: str, items: list[Item], opts: LeaderboardOptions) -> list[str]:
    """Region key (detection, §6.2) or label key (T/L §6.3, A/D §6.4) of every item."""
    keys: list[str] = []
    for record, _sample, where in items:
        try:
            if family == "detection":
                key = region_key(
                    record["region_label"], record["region_modality"], record["slice_dim"], opts.unknown_label
                )
            elif family == "tl":
                name = record["region_label"] if record["region_label"] is not None else record["label_name"]
                modality = (
                    record["region_modality"] if record["region_modality"] is not None else record["modality"]
                )
                key = tl_label_key(name, modality, record["slice_dim"], opts.unknown_label)
            else:
                key = ad_label_key(record["dataset"], record["metric_type"], record["metric_key"])
        except RecordError as exc:
            raise RecordError(f"{where}: {exc}") from None
        keys.append(key)
    return keys


def detection_group(key: str) -> str | None:
    """``anatomy``, ``tumor_lesion`` or ``None`` (an excluded key) for a region key (§6.2 step 3)."""
    if is_excluded_region(key):
        return None
    return "tumor_lesion" if is_tumor_lesion_region(key) else "anatomy"


def ad_group(key: str) -> str | None:
    """The Table 4 row (``ceph_distance``, ``ceph_angle``, ``feta_distance``) of an A/D label key, if any."""
    return next((group for group, needle in AD_GROUPS if needle in key), None)


def _by_key(keys: list[str], items: list[Item]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for key, (_record, sample, _where) in zip(keys, items):
        grouped.setdefault(key, []).append(sample)
    return grouped


def _detection(
    model_key: str, keys: list[str], items: list[Item], opts: LeaderboardOptions
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    regions = _by_key(keys, items)
    details: list[dict[str, Any]] = []
    in_group: dict[str, list[Mapping[str, float]]] = {group: [] for group in DETECTION_GROUPS}
    present: set[str] = set()
    for key, samples in regions.items():
        aggregate = aggregate_detection(samples)
        group = detection_group(key)
        below = aggregate["N"] < int(opts.min_group_size)
        in_row = group is not None and not below and aggregate["N"] > 0
        if group is not None:
            present.add(group)
        if in_row:
            in_group[group].append(aggregate)  # type: ignore[index]
        details.append(
            {
                "model": model_key,
                "region": key,
                "group": group,
                "excluded_key": group is None,
                "below_min_group_size": below,
                "in_row": in_row,
                "samples": aggregate["N"],
                "successes": aggregate["successes"],
                **_columns(aggregate, DETECTION_COLUMNS),
                "metrics": aggregate,
            }
        )
    rows = []
    for group in DETECTION_GROUPS:
        if group not in present:
            continue
        aggregates = in_group[group]
        rows.append(
            {
                "model": model_key,
                "group": group,
                "regions": len(aggregates),
                "samples": sum(int(a["N"]) for a in aggregates),
                **_group_columns(aggregates, DETECTION_COLUMNS),
                "source": "measured",
            }
        )
    details.sort(key=lambda d: (-d["samples"], d["region"]))
    return rows, details


def _tl(
    model_key: str, keys: list[str], items: list[Item]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    labels = _by_key(keys, items)
    details: list[dict[str, Any]] = []
    used: list[Mapping[str, float]] = []
    for key, samples in labels.items():
        aggregate = aggregate_measure(samples)
        # v1 quirk: a label with no finite avgMRE (zero successes) leaves the row entirely, SR and N included.
        in_row = aggregate["N"] > 0 and math.isfinite(aggregate["avgMRE"])
        if in_row:
            used.append(aggregate)
        details.append(
            {
                "model": model_key,
                "label": key,
                "in_row": in_row,
                "samples": aggregate["N"],
                "successes": aggregate["successes"],
                **_columns(aggregate, MEASURE_DETAIL_COLUMNS),
                "metrics": aggregate,
            }
        )
    rows = []
    if labels:
        rows.append(
            {
                "model": model_key,
                "group": "tl",
                "labels": len(used),
                "samples": sum(int(a["N"]) for a in used),
                **_group_columns(used, MEASURE_COLUMNS),
                "source": "measured",
            }
        )
    details.sort(key=lambda d: (-d["samples"], d["label"]))
    return rows, details


def _ad(
    model_key: str, keys: list[str], items: list[Item]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    aggregates = {key: aggregate_measure(samples) for key, samples in _by_key(keys, items).items()}
    details = []
    for key, aggregate in aggregates.items():
        details.append(
            {
                "model": model_key,
                "label": key,
                "group": ad_group(key),
                # zero-success labels stay in SR and samples, but leave MAE and MRE (NaN).
                "in_error_means": not is_nan(aggregate["avgMAE"]),
                "samples": aggregate["N"],
                "successes": aggregate["successes"],
                **_columns(aggregate, MEASURE_DETAIL_COLUMNS),
                "metrics": aggregate,
            }
        )
    rows = []
    selections = [(g, [a for k, a in aggregates.items() if needle in k]) for g, needle in AD_GROUPS]
    selections.append((AD_OVERALL_GROUP, list(aggregates.values())))
    for group, selected in selections:
        if not selected:
            continue
        used = [a for a in selected if a["N"] > 0]
        row = {
            "model": model_key,
            "group": group,
            "labels": len(used),
            "samples": sum(int(a["N"]) for a in used),
            **_group_columns(used, MEASURE_COLUMNS),
            "source": "measured",
        }
        if group == AD_OVERALL_GROUP:
            row["note"] = "all A/D labels pooled, mm and degrees mixed; for information only"
        elif group == "ceph_angle":
            pairs = [(float(r["target"][0]), s) for k, (r, s, _) in zip(keys, items) if ad_group(k) == group]
            if note := near_zero_note(pairs, AD_NEAR_ZERO_GT_THRESHOLD):
                row["note"] = note
        rows.append(row)
    details.sort(key=lambda d: d["label"])
    return rows, details


def cluster_id(record: Mapping[str, Any], where: str) -> str:
    """Bootstrap cluster of a record: one volume, ``"<dataset>/<image_file_rel>"``.

    Raises:
        RecordError: ``image_file_rel`` missing or empty.
    """
    image = record.get("image_file_rel")
    if not isinstance(image, str) or not image:
        raise RecordError(
            f"{where}: field 'image_file_rel' is {image!r}; --ci resamples whole volumes and needs it "
            "(rerun with this plugin's hooks, or leave out --ci)"
        )
    return f"{record['dataset']}/{image}"


def _attach_intervals(
    rows: list[dict[str, Any]], details: list[dict[str, Any]], detail_key: str, found: Mapping[str, Any]
) -> None:
    """Copy ``ci`` and ``clusters`` onto the rows; a cell whose observed value is undefined gets no interval."""
    for target, entry in [(row, found["rows"].get(row["group"])) for row in rows] + [
        (detail, found["details"].get(detail[detail_key])) for detail in details
    ]:
        if entry is None:
            continue
        target["ci"] = {
            column: (None if is_nan(target.get(column)) else bounds) for column, bounds in entry["ci"].items()
        }
        target["clusters"] = entry["clusters"]


def _model_intervals(
    model_key: str,
    families: Mapping[str, list[Item]],
    keys: Mapping[str, list[str]],
    opts: LeaderboardOptions,
) -> tuple[dict[str, dict[str, Any]], int]:
    inputs = {}
    for family, items in families.items():
        inputs[family] = FamilySamples(
            keys=keys[family],
            samples=[sample for _, sample, _ in items],
            clusters=[cluster_id(record, where) for record, _, where in items],
        )
    return bootstrap_model(
        inputs,
        level=float(opts.ci),  # type: ignore[arg-type]
        iterations=int(opts.ci_iterations),
        seed=int(opts.ci_seed),
        stream=model_key,
        min_group_size=int(opts.min_group_size),
        detection_group=detection_group,
        ad_group=ad_group,
        ad_overall_group=AD_OVERALL_GROUP,
    )


# ------------------------------------------------------------------------------------------ main
def build_leaderboard(
    records: list[dict[str, Any]], options: LeaderboardOptions | None = None, **fields: Any
) -> dict[str, Any]:
    """Rebuild the paper's Tables 2-4 rows from ``mv_record`` dicts (docs/reference.md §6).

    Args:
        records: records as returned by :func:`load_records` (or plain ``mv_record`` dicts).
        options: a :class:`LeaderboardOptions`; or give its fields as keyword arguments (below), with
            ``allow_mixed_settings`` accepted as an alias of ``allow_mixed``.
        parse: ``"as-run"`` re-parses with each record's ``settings.parse``; ``"last_k"``/``"answer_tag"``
            override it.
        box_fix, ad_drop_near_zero, tl_remove_multicluster: ``None`` uses each record's recorded switch;
            ``True``/``False`` override it.
        preset: ``"v1"`` (switches as recorded) or ``"paper"`` (v1 plus ``tl_remove_multicluster`` and
            ``ad_drop_near_zero``, forced on).
        min_group_size: detection region size floor (v1: 50).
        allow_demo, allow_multi_instance: accept records otherwise refused.
        allow_mixed: accept several ``settings_id`` within one model, and different annotation versions,
            data/image settings or scoring switches within one table (``allow_mixed_settings`` is an alias).
        last_wins: a later record replaces an earlier conflicting one instead of raising.
        latest: when one (model, task) was run more than once (several samples files), keep the newest file.
        unknown_label: ``"error"`` or ``"others"`` for labels missing from the v1 maps.
        paper: add the published rows (``source: "paper"``) below the measured rows of known models.
        paper_model: use this ``model_key``'s published rows for every measured model (implies ``paper``).
        ci: confidence level in (0, 1) of a percentile bootstrap over volumes; ``None`` for none.
        ci_iterations, ci_seed: bootstrap replicates and seed (per model, the stream also depends on its key).
        boxsize: add the box-size analysis (§6.6) under ``"boxsize"``.
        boxsize_seed, boxsize_draws: seed and draws per GT sample of its random-box reference.

    Returns:
        ``{"detection", "tl", "ad", "details": {"detection_regions", "tl_labels", "ad_labels"}, "models",
        "options", "warnings"}`` plus ``"ci"`` and ``"boxsize"`` when asked. Rows carry ``model``, ``group``,
        ``regions``/``labels``, ``samples``, the paper columns in paper units (detection
        ``R P F1 IoU SR IoU>0.5 F1>0.5`` in %; ``MAE`` in mm or degrees, ``MRE SR MRE<0.1`` in %) and
        ``source``; with ``ci`` also ``ci`` (``{column: [low, high]}``) and ``clusters``. NaN is ``None``.

    Raises:
        RecordError: malformed records, runs or records in conflict, mixed settings or annotation versions,
            demo or multi-instance records without their flags, unknown labels, a missing multi-cluster list,
            a record without ``image_file_rel`` (``ci``) or ``image_size_2d`` (``boxsize``).
        ValueError: invalid option values.
    """
    if options is None:
        if fields.pop("allow_mixed_settings", False):
            fields["allow_mixed"] = True
        options = LeaderboardOptions(**fields)
    elif fields:
        raise TypeError(f"build_leaderboard: give options or keyword fields, not both ({', '.join(fields)})")
    with _cyclic_gc_paused():
        return _build(records, options)


def _score_by_model(
    records: list[dict[str, Any]], opts: LeaderboardOptions, warnings: list[str]
) -> tuple[dict[str, list[tuple[int, dict[str, Any]]]], dict[str, dict[str, list[Item]]]]:
    """Deduplicate, group by model key, check settings, and re-score every record: ``(by_model, scored)``."""
    keys = [model_key_for(r["model"]["adapter"], r["model"].get("pretrained")) for r in records]
    kept = _deduplicate(records, keys, opts, warnings)
    by_model: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for index, record, model_key in kept:
        by_model.setdefault(model_key, []).append((index, record))
    scored: dict[str, dict[str, list[Item]]] = {}
    for model_key in sorted(by_model):
        items = by_model[model_key]
        _check_settings(model_key, items, opts, warnings)
        families: dict[str, list[Item]] = {f: [] for f in FAMILY_K}
        for index, record in items:
            where = _where(record, index)
            families[record["family"]].append((record, _rescore(record, where, opts), where))
        scored[model_key] = families
    _check_comparable(scored, opts, warnings)
    return by_model, scored


def _tables(
    by_model: dict[str, list[tuple[int, dict[str, Any]]]],
    scored: dict[str, dict[str, list[Item]]],
    opts: LeaderboardOptions,
    warnings: list[str],
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]], list[dict[str, Any]], dict[str, int]]:
    """Table rows, per-region/per-label details, model summaries and (with ``ci``) cluster counts per model."""
    tables: dict[str, list[dict[str, Any]]] = {"detection": [], "tl": [], "ad": []}
    details: dict[str, list[dict[str, Any]]] = {"detection_regions": [], "tl_labels": [], "ad_labels": []}
    models: list[dict[str, Any]] = []
    clusters: dict[str, int] = {}
    for model_key, families in scored.items():
        items = by_model[model_key]
        keys_by_family = {family: _family_keys(family, rows, opts) for family, rows in families.items()}
        det_rows, det_details = _detection(model_key, keys_by_family["detection"], families["detection"], opts)
        tl_rows, tl_details = _tl(model_key, keys_by_family["tl"], families["tl"])
        ad_rows, ad_details = _ad(model_key, keys_by_family["ad"], families["ad"])
        if opts.ci is not None:
            found, clusters[model_key] = _model_intervals(model_key, families, keys_by_family, opts)
            _attach_intervals(det_rows, det_details, "region", found["detection"])
            _attach_intervals(tl_rows, tl_details, "label", found["tl"])
            _attach_intervals(ad_rows, ad_details, "label", found["ad"])
        tables["detection"].extend(det_rows)
        tables["tl"].extend(tl_rows)
        tables["ad"].extend(ad_rows)
        details["detection_regions"].extend(det_details)
        details["tl_labels"].extend(tl_details)
        details["ad_labels"].extend(ad_details)
        models.append(_model_summary(model_key, items, families))
        _count_warnings(model_key, items, det_rows + tl_rows + ad_rows, families, opts, warnings)
        own = {"detection_regions": det_details, "tl_labels": tl_details, "ad_labels": ad_details}
        warnings.extend(drop_warnings(model_key, own, families, keys_by_family))
    for table, group_order in (
        ("detection", DETECTION_GROUPS),
        ("tl", ("tl",)),
        ("ad", (*(g for g, _ in AD_GROUPS), AD_OVERALL_GROUP)),
    ):
        tables[table].sort(key=lambda row, order=group_order: (order.index(row["group"]), row["model"]))
    return tables, details, models, clusters


def _build(records: list[dict[str, Any]], opts: LeaderboardOptions) -> dict[str, Any]:
    """The body of :func:`build_leaderboard` for validated options."""
    warnings: list[str] = []
    records = list(records)
    if not records:
        raise RecordError("no records to summarise")
    for index, record in enumerate(records):
        if not isinstance(record, dict) or SOURCE_FIELD not in record:  # load_records validated the others
            validate_record(record, f"record {index}")
    _refuse(records, opts)
    check_row_sources(records, opts.allow_mixed, warnings)
    # spacing variants (docs/spacing-test.md) share configs with their base subtasks: kept out of Tables 2-4
    variants = [r for r in records if is_spacing_record(r)]
    records = [r for r in records if not is_spacing_record(r)]
    by_model, scored = _score_by_model(records, opts, warnings)
    tables, details, models, clusters = _tables(by_model, scored, opts, warnings)
    _version_warning(records, warnings)
    if opts.paper:
        _insert_paper_rows(tables, opts.paper_model)
        if unpublished := unpublished_models_warning(tables, opts.paper_model):
            warnings.append(unpublished)

    result: dict[str, Any] = {
        **tables,
        "details": details,
        "models": models,
        "options": asdict(opts),
        "warnings": warnings,
    }
    if opts.ci is not None:
        result["ci"] = {
            "level": opts.ci,
            "iterations": int(opts.ci_iterations),
            "seed": int(opts.ci_seed),
            "method": "percentile bootstrap (inverted CDF); whole volumes resampled with replacement, per model",
            "cluster": "dataset + image_file_rel",
            "clusters": clusters,
        }
    if variants:
        result["spacing"] = _spacing(variants, scored, opts, warnings)
    if opts.boxsize:
        detection = {model_key: families["detection"] for model_key, families in scored.items()}
        result["boxsize"] = boxsize_analysis(detection, seed=int(opts.boxsize_seed), draws=int(opts.boxsize_draws))
    return _json_ready(result)


def _spacing(
    variants: list[dict[str, Any]],
    scored: Mapping[str, Mapping[str, list[Item]]],
    opts: LeaderboardOptions,
    warnings: list[str],
) -> dict[str, Any]:
    """The Spacing sensitivity table (:mod:`.spacing`): variant records de-duplicated per k like any run,
    re-scored, and paired with the kept base records."""
    keys = [model_key_for(r["model"]["adapter"], r["model"].get("pretrained")) for r in variants]
    items: list[SpacingItem] = []
    factors = [str(r["spacing"].get("k")) if isinstance(r["spacing"], dict) else "" for r in variants]
    for k in sorted(set(factors)):  # one k at a time: the variants of one base share its config and rows
        chosen = [i for i, factor in enumerate(factors) if factor == k]
        subset = [variants[i] for i in chosen]
        for index, record, model_key in _deduplicate(subset, [keys[i] for i in chosen], opts, warnings):
            where = _where(record, chosen[index])
            items.append(SpacingItem(record, _rescore(record, where, opts), where, model_key))
    bases = [
        SpacingItem(record, sample, where, model_key)
        for model_key, families in scored.items()
        for family in ("tl", "ad")
        for record, sample, where in families.get(family, ())
    ]
    table = spacing_table(
        items, bases, ci=opts.ci, ci_iterations=int(opts.ci_iterations), ci_seed=int(opts.ci_seed)
    )
    if table["missing_base"]:
        listed = sorted({m["base_task"] for m in table["missing_base"]})
        warnings.append(
            f"spacing: {sum(m['records'] for m in table['missing_base'])} variant record(s) have no base-task record "
            f"of the same model; run {', '.join(listed)} with the same model and settings"
        )
    return table


def _version_warning(records: list[dict[str, Any]], warnings: list[str]) -> None:
    installed = installed_plugin_version()
    mine = _version_tuple(installed)
    versions = {str(r.get("plugin_version")) for r in records}
    newer = sorted(v for v in versions if mine is not None and (_version_tuple(v) or ()) > mine)
    if newer:
        warnings.append(
            f"records written by plugin {', '.join(newer)}, newer than this leaderboard (plugin {installed}); "
            "upgrade lmms-eval-medvision to summarise them with the same rules"
        )


def _model_summary(
    model_key: str,
    items: list[tuple[int, dict[str, Any]]],
    families: Mapping[str, list[tuple[dict[str, Any], dict[str, Any], str]]],
) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for _, record in items:
        settings.setdefault(str(record["settings_id"]), record["settings"])
    first = items[0][1]["model"]
    effective = {
        "parse": sorted({s["parse"] for rows in families.values() for _, s, _ in rows}),
        "box_fix": sorted({s["switch"] for _, s, _ in families["detection"]}),
        "tl_remove_multicluster": sorted({s["switch"] for _, s, _ in families["tl"]}),
        "ad_drop_near_zero": sorted({s["switch"] for _, s, _ in families["ad"]}),
    }
    return {
        "model": model_key,
        "adapter": first["adapter"],
        "pretrained": first.get("pretrained"),
        "backends": sorted({str(r["model"].get("backend")) for _, r in items}),
        "records": len(items),
        "records_by_family": {f: len(rows) for f, rows in families.items()},
        "excluded": sum(1 for rows in families.values() for _, s, _ in rows if s["excluded"]),
        "data_root_kinds": sorted({str(r["data_root_kind"]) for _, r in items}),
        "plugin_versions": sorted({str(r.get("plugin_version")) for _, r in items}),
        "plan_versions": sorted({str(r.get("plan_version")) for _, r in items}),
        "settings": settings,
        "effective": effective,
    }


def _count_warnings(
    model_key: str,
    items: list[tuple[int, dict[str, Any]]],
    rows: list[dict[str, Any]],
    families: Mapping[str, list[tuple[dict[str, Any], dict[str, Any], str]]],
    opts: LeaderboardOptions,
    warnings: list[str],
) -> None:
    truncated = sum(1 for _, r in items if r.get("truncated"))
    if truncated:
        warnings.append(f"{model_key}: {truncated} response(s) hit max_new_tokens (truncated)")
    if any(r["data_root_kind"] == "demo" for _, r in items):
        return
    for row in rows:
        table = "detection" if "regions" in row else ("tl" if row["group"] == "tl" else "ad")
        headline = PAPER_HEADLINE_COUNTS.get((table, row["group"]))
        if headline is None:
            continue
        paper_n = headline[1]
        if abs(row["samples"] - paper_n) > 0.01 * paper_n:
            hint = ""
            if opts.preset == "v1" and row["group"] in ("tl", "ceph_angle"):
                hint = "; --preset paper applies the filters the paper's counts imply"
            warnings.append(
                f"{model_key} {row['group']}: {row['samples']} samples, the paper reports {paper_n} "
                f"(more than 1% apart){hint}"
            )


def _insert_paper_rows(tables: dict[str, list[dict[str, Any]]], paper_model: str | None) -> None:
    inserted: set[tuple[str, str, str]] = set()
    for table, rows in tables.items():
        out: list[dict[str, Any]] = []
        for row in rows:
            out.append(row)
            published_key = paper_model or row["model"]
            for published in paper_rows(published_key)[table]:
                marker = (table, published_key, published["group"])
                if published["group"] == row["group"] and marker not in inserted:
                    inserted.add(marker)
                    out.append(published)
        rows[:] = out
