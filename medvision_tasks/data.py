"""Plan files -> benchmark rows (docs/reference.md §1.2-§1.5): version ceiling, flattening, filters, order and cap
(the row cache is in row_cache.py, Arrow input in arrow_rows.py).

Rows are plain dicts with the official field names plus `mv_*` plugin fields. Coordinates in
`bounding_boxes` are (row, col) array indices, origin top-left, min/max inclusive. GT values are
float16-rounded as in the official rows.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from medvision_metrics.scoring import MULTICLUSTER_FILE

from .errors import PlanError, SettingsError
from .notices import warn

FAMILY_BY_ANNOTATION = {"BoxSize": "detection", "TumorLesionSize": "tl", "BiometricsFromLandmarks": "ad"}
PLAN_KIND_BY_FAMILY = {"detection": "detection", "tl": "biometry", "ad": "biometry"}
TASK_TYPE_BY_FAMILY = {"detection": "Box-Size", "tl": "Tumor-Lesion-Size", "ad": "Biometrics-From-Landmarks"}
SLICE_DIM_BY_PLANE = {"Sagittal": 0, "Coronal": 1, "Axial": 2}
PROFILE_KEY_BY_DIM = {0: "slice_profiles_x", 1: "slice_profiles_y", 2: "slice_profiles_z"}
PLANE_LETTER_BY_DIM = {0: "x", 1: "y", 2: "z"}
METRIC_TOKENS = ("Distance", "Angle")
MIN_BOX_DIMENSION_PX = 10
TL_MAJOR_KEY, TL_MINOR_KEY = "L-1-2", "L-3-4"
_PLAN_RE = re.compile(r"^benchmark_plan_(?P<kind>[a-z]+)_v(?P<version>\d+(?:\.\d+)*)\.json\.gz$")


def f16(value: float) -> float:
    """Round to float16 and back, as the official rows store GT values."""
    return float(np.float16(value))


@dataclass(frozen=True)
class ConfigName:
    """Parsed official config name `{dataset}_{annotation}[_{Distance|Angle}]_Task{NN}_{plane}_{split}`."""

    config: str
    dataset: str
    annotation: str
    metric_token: str | None
    task_id: str
    plane: str
    split: str

    @property
    def family(self) -> str:
        return FAMILY_BY_ANNOTATION[self.annotation]

    @property
    def slice_dim(self) -> int:
        return SLICE_DIM_BY_PLANE[self.plane]

    @property
    def plan_kind(self) -> str:
        return PLAN_KIND_BY_FAMILY[self.family]

    @property
    def task_type(self) -> str:
        base = TASK_TYPE_BY_FAMILY[self.family]
        return f"{base}-{self.metric_token}" if self.metric_token else base

    @property
    def official_task(self) -> str:
        """The official lmms-eval task name: no `_Test`, `BoxSize` written `BoxCoordinate`."""
        name = self.config.removesuffix(f"_{self.split}")
        return name.replace("_BoxSize_", "_BoxCoordinate_")

    def with_split(self, split: str) -> ConfigName:
        return parse_config_name(self.config.removesuffix(f"_{self.split}") + f"_{split}")


def parse_config_name(config: str) -> ConfigName:
    """Split an official config name into its fields (dataset names contain no `_`)."""
    parts = config.split("_")
    fix = (
        "expected {dataset}_{BoxSize|TumorLesionSize|BiometricsFromLandmarks}[_Distance|_Angle]_TaskNN_"
        "{Sagittal|Coronal|Axial}_{Train|Test}"
    )
    if len(parts) not in (5, 6):
        raise PlanError(f"config {config!r}: {fix}")
    dataset, annotation = parts[0], parts[1]
    token = parts[2] if len(parts) == 6 else None
    task, plane, split = parts[-3], parts[-2], parts[-1]
    if annotation == "BoxCoordinate":
        annotation = "BoxSize"
    if annotation not in FAMILY_BY_ANNOTATION:
        raise PlanError(f"config {config!r}: unknown annotation type {annotation!r}; {fix}")
    if token is not None and (token not in METRIC_TOKENS or annotation != "BiometricsFromLandmarks"):
        raise PlanError(f"config {config!r}: unexpected token {token!r}; {fix}")
    if not re.fullmatch(r"Task\d\d", task) or plane not in SLICE_DIM_BY_PLANE or split not in ("Train", "Test"):
        raise PlanError(f"config {config!r}: {fix}")
    return ConfigName(config, dataset, annotation, token, task[4:], plane, split)


def _version_tuple(text: str) -> tuple[int, ...]:
    """`1.1` -> (1, 1, 0): versions compare as integer triples, so a short ceiling means X.Y.0."""
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * max(0, 3 - len(parts))


def dataset_dir(root: Path, dataset: str) -> Path:
    """`<root>/Datasets/<dataset>`, with a clear error when the root or the dataset is absent."""
    root = Path(root)
    if not root.is_dir():
        raise PlanError(
            f"data root {root} does not exist; set MEDVISION_DATA_DIR to a MedVision data root "
            "(filled by the official downloader) or run `medvision-eval phantom --out DIR` for a synthetic one."
        )
    datasets_dir = root / "Datasets"
    if not datasets_dir.is_dir():
        raise PlanError(
            f"data root {root} has no Datasets/ folder; MEDVISION_DATA_DIR must point at the folder that "
            "holds Datasets/<dataset>/benchmark_plan_*.json.gz."
        )
    folder = datasets_dir / dataset
    if not folder.is_dir():
        raise PlanError(
            f"dataset folder {folder} is missing; download {dataset} with the official MedVision downloader "
            "or drop its tasks from --tasks (`medvision-eval doctor` lists what is present)."
        )
    return folder


def find_plan(folder: Path, kind: str, ceiling: str = "1.0.0") -> tuple[Path, str]:
    """Highest `benchmark_plan_<kind>_v*.json.gz` version <= ceiling (`latest` = highest present)."""
    found: dict[tuple[int, ...], tuple[Path, str]] = {}
    for path in folder.glob(f"benchmark_plan_{kind}_v*.json.gz"):
        m = _PLAN_RE.match(path.name)
        if m and m["kind"] == kind:
            found[_version_tuple(m["version"])] = (path, m["version"])
    if ceiling == "latest":
        eligible = sorted(found)
    else:
        try:
            limit = _version_tuple(ceiling)
        except ValueError:
            raise PlanError(f"MedVision_PLANNER_VERSION={ceiling!r}: expected X.Y.Z or 'latest'.") from None
        eligible = sorted(v for v in found if v <= limit)
    if not eligible:
        versions = ", ".join(v for _, v in sorted(found.values(), key=lambda pv: _version_tuple(pv[1]))) or "none"
        raise PlanError(
            f"{folder}: no benchmark_plan_{kind}_v*.json.gz <= {ceiling} (found: {versions}); "
            "set MedVision_PLANNER_VERSION=latest or add the v1.0.0 plan."
        )
    return found[eligible[-1]]


def plan_versions(folder: Path) -> dict[str, list[str]]:
    """Plan versions present in a dataset folder, by kind, ascending."""
    found: dict[str, list[tuple[int, ...]]] = {}
    for path in Path(folder).glob("benchmark_plan_*_v*.json.gz"):
        m = _PLAN_RE.match(path.name)
        if m:
            found.setdefault(m["kind"], []).append(_version_tuple(m["version"]))
    return {k: [".".join(map(str, v)) for v in sorted(vs)] for k, vs in sorted(found.items())}


_TASK_KEYS = ("task_ID", "labels_map", "test_cases", "train_cases")
_CASE_KEYS = ("image_file", "image_file_info")


@lru_cache(maxsize=32)
def _read_plan_cached(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            plan = json.load(fh)
    except (OSError, EOFError, zlib.error) as exc:
        raise PlanError(f"{path}: not a readable gzip file ({exc}); re-download the plan.") from exc
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path}: invalid JSON ({exc}); re-download the plan.") from exc
    _check_plan(plan, path)
    return plan


def read_plan(path: Path) -> dict[str, Any]:
    """Load and schema-check one gzip JSON plan (cached by path, mtime and size)."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"plan file {path} is missing; re-download the dataset's plans.")
    stat = path.stat()
    return _read_plan_cached(str(path), stat.st_mtime_ns, stat.st_size)


def _check_plan(plan: Any, path: str) -> None:
    """Check the fields the reader needs (types and presence); slice entries are checked while flattening."""

    def fail(field: str, what: str) -> None:
        raise PlanError(
            f"{path}: field {field} {what}; the plan does not follow the MedVision schema (re-download it, or fix "
            "the entry if you edited the plan)."
        )

    if not isinstance(plan, dict):
        fail("<top level>", "is not an object")
    tasks = plan.get("tasks")
    if not isinstance(tasks, list):
        fail("tasks", "is missing or not a list")
    for ti, task in enumerate(tasks):
        if not isinstance(task, dict):
            fail(f"tasks[{ti}]", "is not an object")
        for key in _TASK_KEYS:
            if key not in task:
                fail(f"tasks[{ti}].{key}", "is missing")
        if not isinstance(task["task_ID"], str) or not re.fullmatch(r"\d\d", task["task_ID"]):
            fail(f"tasks[{ti}].task_ID", f"is {task['task_ID']!r}, not a two-digit string such as '01'")
        for key in ("labels_map", "landmarks_map", "lines_map", "angles_map"):
            if key in task and not isinstance(task[key], dict):
                fail(f"tasks[{ti}].{key}", f"is a {type(task[key]).__name__}, not an object")
        for key in ("image_modality", "image_description"):
            if key in task and not isinstance(task[key], str):
                fail(f"tasks[{ti}].{key}", f"is a {type(task[key]).__name__}, not a string")
        if "target_label" in task and not re.fullmatch(r"\d+(\.0)?", str(task["target_label"])):
            fail(f"tasks[{ti}].target_label", f"is {task['target_label']!r}, not a mask label value")
        for split in ("test_cases", "train_cases"):
            if not isinstance(task[split], list):
                fail(f"tasks[{ti}].{split}", "is not a list")
            for ci, case in enumerate(task[split]):
                where = f"tasks[{ti}].{split}[{ci}]"
                if not isinstance(case, dict):
                    fail(where, "is not an object")
                for key in _CASE_KEYS:
                    if key not in case:
                        fail(f"{where}.{key}", "is missing")
                for key in ("image_file", "mask_file", "landmark_file"):
                    if key in case and not (isinstance(case[key], str) and case[key]):
                        fail(f"{where}.{key}", f"is {case[key]!r}, not a non-empty path string")
                info = case["image_file_info"]
                if not isinstance(info, dict):
                    fail(f"{where}.image_file_info", "is not an object")
                for key in ("voxel_size", "array_size"):
                    value = info.get(key)
                    if (
                        not isinstance(value, list)
                        or len(value) != 3
                        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                    ):
                        fail(f"{where}.image_file_info.{key}", f"is {value!r}, not a list of 3 numbers")
                for key in PROFILE_KEY_BY_DIM.values():
                    if key in case and not isinstance(case[key], list):
                        fail(f"{where}.{key}", "is not a list")


def plan_task(plan: dict[str, Any], task_id: str, where: str) -> dict[str, Any]:
    """`tasks[int(NN) - 1]`, asserting its task_ID."""
    index = int(task_id) - 1
    tasks = plan["tasks"]
    if index >= len(tasks) or str(tasks[index].get("task_ID")) != task_id:
        ids = [t.get("task_ID") for t in tasks]
        raise PlanError(f"{where}: no task_ID {task_id!r} at tasks[{index}] (task IDs: {ids}).")
    return tasks[index]


def resolve_data_path(root: Path, dataset: str, value: str, field: str) -> tuple[Path, str]:
    """Absolute path and dataset-relative path of a plan path; rejects paths escaping the dataset folder.

    The check is lexical (`..` is normalised, symlinks are not followed), so a dataset whose `Images/` is a
    symlink to another disk stays valid. Absolute paths inside the dataset folder are kept; other absolute
    paths containing `/<dataset>/` (the builder's machine) are re-rooted after that marker.
    """
    ds_dir = Path(os.path.abspath(Path(root) / "Datasets" / dataset))
    p = Path(value)
    if p.is_absolute():
        marker = f"/{dataset}/"
        normalised = Path(os.path.normpath(p))
        if normalised.is_relative_to(ds_dir):
            candidate = normalised
        elif marker in value:
            candidate = Path(os.path.normpath(ds_dir / value.split(marker, 1)[1]))
        else:
            raise PlanError(
                f"{field} {value!r}: absolute path outside {ds_dir}; plans must hold paths relative to the "
                "dataset folder (or absolute paths containing /<dataset>/, which are re-rooted)."
            )
    else:
        candidate = Path(os.path.normpath(ds_dir / p))
    if candidate == ds_dir or not candidate.is_relative_to(ds_dir):
        raise PlanError(f"{field} {value!r} escapes the dataset folder {ds_dir}; fix the plan entry.")
    return candidate, candidate.relative_to(ds_dir).as_posix()


def _require_finite(values: list[float], field: str, where: str) -> None:
    """GT must be finite (after float16 rounding): refuse the row rather than score against NaN or inf."""
    if not all(math.isfinite(v) for v in values):
        raise PlanError(
            f"{where}: {field} {values} is not finite (NaN or inf after float16 rounding); the plan's ground "
            "truth is broken: re-download the plan, or fix or remove this entry."
        )


def _drop_axis(values: list[Any], slice_dim: int) -> list[Any]:
    return [v for i, v in enumerate(values) if i != slice_dim]


def _bbox_dict(bboxes: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {
        "min_coords": [[int(c) for c in b["min_coords"]] for b in bboxes],
        "max_coords": [[int(c) for c in b["max_coords"]] for b in bboxes],
        "center_coords": [[float(c) for c in b["center_coords"]] for b in bboxes],
        "dimensions": [[int(c) for c in b["dimensions"]] for b in bboxes],
        "sizes": [[f16(c) for c in b["sizes"]] for b in bboxes],
    }


def _tl_profile(ellipses: list[Any]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {k: [] for k in _TL_KEYS}
    for ellipse in ellipses:
        by_key = {m.get("metric_key"): m for m in ellipse if isinstance(m, dict)}
        major, minor = by_key.get(TL_MAJOR_KEY), by_key.get(TL_MINOR_KEY)
        if major is None or minor is None:
            continue
        cols["metric_type"].append(major.get("metric_type"))
        cols["metric_map_name"].append(major.get("metric_map_name"))
        cols["metric_key_major_axis"].append(TL_MAJOR_KEY)
        cols["metric_value_major_axis"].append(f16(major["metric_value"]))
        cols["metric_key_minor_axis"].append(TL_MINOR_KEY)
        cols["metric_value_minor_axis"].append(f16(minor["metric_value"]))
        cols["metric_unit"].append(major.get("metric_unit"))
    return cols


def _ad_names(task: dict[str, Any], metric: dict[str, Any], where: str) -> dict[str, Any]:
    """Resolve the A/D name and landmark names from the plan maps (docs/reference.md §3.1)."""

    def lookup(map_name: str, key: str) -> Any:
        table = task.get(map_name)
        if not isinstance(table, dict) or key not in table:
            raise PlanError(f"{where}: {map_name}[{key!r}] is missing from the plan task.")
        return table[key]

    def line_points(line: dict[str, Any]) -> list[str]:
        return [str(lookup(line["element_map_name"], k)) for k in line["element_keys"]]

    entry = lookup(metric["metric_map_name"], metric["metric_key"])
    out: dict[str, Any] = {"mv_ad_name": str(entry.get("name") or ""), "mv_ad_points": None, "mv_ad_lines": None}
    if metric["metric_type"] == "distance":
        out["mv_ad_points"] = line_points(entry)
    else:
        lines = [lookup(entry["element_map_name"], k) for k in entry["element_keys"]]
        out["mv_ad_lines"] = [line_points(line) for line in lines]
    return out


def _load_multicluster_keys(ds_dir: Path) -> set[tuple[str, int, int, int]] | None:
    path = ds_dir / MULTICLUSTER_FILE
    if not path.is_file():
        return None
    try:
        entries = json.loads(path.read_text())
        dims = {"x": 0, "y": 1, "z": 2}
        return {
            (str(e["image_file"]).lstrip("./"), dims[e["slice_dim"]], int(e["slice_idx"]), int(e["task_ID"]))
            for e in entries
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise PlanError(
            f"{path}: malformed multi-cluster list ({exc}); expected a JSON list of "
            "{image_file, slice_dim, slice_idx, task_ID}."
        ) from exc


@dataclass
class RowStats:
    """Counts of one flattening pass (for doctor and tests); not filled when rows come from the row cache."""

    flattened: int = 0
    kept: int = 0
    dropped_multi_box: int = 0
    dropped_small_box: int = 0
    dropped_multi_cluster: int = 0
    dropped_empty: int = 0
    dropped_metric_type: int = 0


# ------------------------------------------------------------------------------------- plan overrides
PLAN_KINDS = ("detection", "biometry", "segmentation")
_NOT_OVERRIDABLE = ("task_ID", "test_cases", "train_cases")
_MERGED_MAPS = ("labels_map", "landmarks_map", "lines_map", "angles_map")
Overrides = dict[str, dict[str, dict[str, dict[str, Any]]]]


def parse_plan_overrides(text: str | None) -> Overrides:
    """Parse MEDVISION_PLAN_OVERRIDES: a JSON file path or inline JSON `{dataset: {kind: {task_ID: {field: v}}}}`."""
    if not text or not text.strip():
        return {}
    raw, source = text.strip(), "MEDVISION_PLAN_OVERRIDES"
    if not raw.startswith("{"):
        path = Path(raw).expanduser()
        if not path.is_file():
            raise SettingsError(
                f"MEDVISION_PLAN_OVERRIDES={text!r}: file not found; point it at a JSON file "
                "{dataset: {kind: {task_ID: {field: value}}}} or give that JSON inline."
            )
        raw, source = path.read_text(encoding="utf-8"), str(path)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"{source}: invalid JSON ({exc}); expected {{dataset: {{kind: {{task_ID: {{...}}}}}}}}."
        ) from None
    shape = "expected {dataset: {detection|biometry|segmentation: {task_ID: {field: value}}}}"
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: {shape}.")
    for dataset, kinds in data.items():
        if not isinstance(kinds, dict):
            raise SettingsError(f"{source}: [{dataset!r}] is not an object; {shape}.")
        for kind, tasks in kinds.items():
            if kind not in PLAN_KINDS:
                raise SettingsError(f"{source}: [{dataset!r}][{kind!r}]: unknown plan kind; use one of {PLAN_KINDS}.")
            if not isinstance(tasks, dict):
                raise SettingsError(f"{source}: [{dataset!r}][{kind!r}] is not an object; {shape}.")
            for task_id, fields in tasks.items():
                where = f"{source}: [{dataset!r}][{kind!r}][{task_id!r}]"
                if not re.fullmatch(r"\d\d", str(task_id)) or not isinstance(fields, dict):
                    raise SettingsError(f"{where}: task IDs are two-digit strings ('01') mapping to objects; {shape}.")
                for name, value in fields.items():
                    if name in _NOT_OVERRIDABLE:
                        raise SettingsError(
                            f"{where}: {name!r} cannot be overridden (cases and IDs come from the plan)."
                        )
                    if name in _MERGED_MAPS and not isinstance(value, dict):
                        raise SettingsError(f"{where}: {name!r} must be an object, got {type(value).__name__}.")
                    if name in ("image_description", "image_modality") and not isinstance(value, str):
                        raise SettingsError(f"{where}: {name!r} must be a string, got {type(value).__name__}.")
    return data


def apply_overrides(task: dict[str, Any], overrides: Overrides, dataset: str, kind: str) -> dict[str, Any]:
    """The plan task with its override fields applied (maps merged key by key, other fields replaced)."""
    fields = overrides.get(dataset, {}).get(kind, {}).get(str(task.get("task_ID")))
    if not fields:
        return task
    out = dict(task)
    for name, value in fields.items():
        out[name] = {**out.get(name, {}), **value} if name in _MERGED_MAPS else value
    return out


# --------------------------------------------------------------------------------------- flattening
OFFICIAL_FIELDS = (
    "dataset_name",
    "taskID",
    "taskType",
    "image_file",
    "mask_file",
    "landmark_file",
    "slice_dim",
    "slice_idx",
    "image_size_2d",
    "pixel_size",
    "image_size_3d",
    "voxel_size",
    "label",
    "bounding_boxes",
    "biometric_profile",
)
PATH_FIELDS = ("image_file", "mask_file", "landmark_file")
_BOX_KEYS = ("min_coords", "max_coords", "center_coords", "dimensions", "sizes")
_TL_KEYS = (
    "metric_type",
    "metric_map_name",
    "metric_key_major_axis",
    "metric_value_major_axis",
    "metric_key_minor_axis",
    "metric_value_minor_axis",
    "metric_unit",
)


@dataclass(frozen=True)
class PlanInputs:
    """The files one config's rows depend on (plan, segmentation plan, multi-cluster list)."""

    ds_dir: Path
    plan_path: Path
    version: str
    segmentation_path: Path | None
    multi_cluster_path: Path | None


def plan_inputs(root: Path, cfg: ConfigName, planner_version: str) -> PlanInputs:
    """Locate the plan of a config under the version ceiling, plus the files its mv_* fields read."""
    ds_dir = dataset_dir(Path(root), cfg.dataset)
    plan_path, version = find_plan(ds_dir, cfg.plan_kind, planner_version)
    seg_path = None
    if cfg.family == "detection":
        try:
            seg_path = find_plan(ds_dir, "segmentation", planner_version)[0]
        except PlanError:
            seg_path = None
    mc = ds_dir / MULTICLUSTER_FILE
    return PlanInputs(ds_dir, plan_path, version, seg_path, mc if cfg.family == "tl" and mc.is_file() else None)


@dataclass
class _PlanContext:
    """What every row of one config shares: the plan task (overrides applied) and the region source."""

    root: Path
    cfg: ConfigName
    inputs: PlanInputs
    task: dict[str, Any]
    labels_map: dict[str, str]
    region_labels: dict[str, str]
    region_modality: str
    region_flag: bool
    multicluster: set[tuple[str, int, int, int]] | None
    filtering: bool
    where: str


def _plan_context(
    root: Path, cfg: ConfigName, planner_version: str, filtering: bool, overrides: Overrides | None
) -> _PlanContext:
    inputs = plan_inputs(root, cfg, planner_version)
    overrides = overrides or {}
    task = plan_task(read_plan(inputs.plan_path), cfg.task_id, str(inputs.plan_path))
    task = apply_overrides(task, overrides, cfg.dataset, cfg.plan_kind)
    region_task, region_flag = task, False
    if cfg.family == "detection":
        region_flag = True
        if inputs.segmentation_path is not None:
            try:
                seg = plan_task(read_plan(inputs.segmentation_path), cfg.task_id, str(inputs.segmentation_path))
                region_task, region_flag = apply_overrides(seg, overrides, cfg.dataset, "segmentation"), False
            except PlanError:
                region_task, region_flag = task, True
    labels_map = {str(k): str(v) for k, v in task["labels_map"].items()}
    return _PlanContext(
        root=Path(root),
        cfg=cfg,
        inputs=inputs,
        task=task,
        labels_map=labels_map,
        region_labels={str(k): str(v) for k, v in region_task.get("labels_map", {}).items()},
        region_modality=str(region_task.get("image_modality") or ""),
        region_flag=region_flag,
        multicluster=_load_multicluster_keys(inputs.ds_dir) if cfg.family == "tl" else None,
        filtering=filtering,
        where=f"{inputs.plan_path} task {cfg.task_id}",
    )


def _finish_row(ctx: _PlanContext, official: dict[str, Any], image_rel: str, where: str) -> dict[str, Any]:
    """Official fields in canonical order plus the mv_* fields resolved from the plan task."""
    cfg, task = ctx.cfg, ctx.task
    row = {k: official[k] for k in OFFICIAL_FIELDS if k in official}
    row.update(
        mv_config=cfg.config,
        mv_family=cfg.family,
        mv_plan_version=ctx.inputs.version,
        mv_image_file_rel=image_rel,
        mv_image_description=str(task.get("image_description") or ""),
        mv_modality=str(task.get("image_modality") or ""),
        mv_multi_instance=not ctx.filtering,
    )
    if cfg.family == "detection":
        label = row["label"]
        name = ctx.labels_map.get(str(label))
        if name is None:
            raise PlanError(f"{where}: label {label} is not in labels_map {sorted(ctx.labels_map)}.")
        row.update(
            mv_label_name=name,
            mv_region_label=ctx.region_labels.get(str(label), name),
            mv_region_modality=ctx.region_modality,
            mv_region_from_detection_plan=ctx.region_flag or str(label) not in ctx.region_labels,
        )
    elif cfg.family == "tl":
        label = row["label"]
        name = ctx.labels_map.get(str(label))
        if name is None:
            raise PlanError(f"{where}: target_label {label} is not in labels_map {sorted(ctx.labels_map)}.")
        key = (image_rel, int(row["slice_dim"]), int(row["slice_idx"]), int(cfg.task_id))
        row.update(
            mv_label_name=name,
            mv_region_label=name,
            mv_region_modality=row["mv_modality"],
            mv_region_from_detection_plan=False,
            mv_multicluster_listed=None if ctx.multicluster is None else key in ctx.multicluster,
        )
    else:
        row.update(
            mv_label_name=None, mv_region_label=None, mv_region_modality=None, mv_region_from_detection_plan=False
        )
        row.update(_ad_names(task, row["biometric_profile"], where))
    return row


def _ad_profile(metric: dict[str, Any], dim: int) -> dict[str, Any]:
    return {
        "metric_type": str(metric["metric_type"]),
        "metric_map_name": str(metric["metric_map_name"]),
        "metric_key": str(metric["metric_key"]),
        "metric_value": f16(metric["metric_value"]),
        "metric_unit": str(metric["metric_unit"]),
        "slice_dim": int(metric.get("slice_dim", dim)),
    }


def _entry_rows(
    ctx: _PlanContext, case_fields: dict[str, Any], image_rel: str, entry: dict[str, Any], where: str, stats: RowStats
) -> list[dict[str, Any]]:
    """The kept rows of one slice entry (docs/reference.md §1.4 steps 2-3)."""
    cfg, filtering = ctx.cfg, ctx.filtering
    slice_idx = int(entry["slice_idx"])
    profile = entry["slice_profile"]
    out = []
    if cfg.family == "detection":
        for item in profile:
            stats.flattened += 1
            bboxes = item.get("bboxes") or []
            if filtering and len(bboxes) != 1:
                stats.dropped_multi_box += 1
                continue
            if filtering and min(int(d) for d in bboxes[0]["dimensions"]) < MIN_BOX_DIMENSION_PX:
                stats.dropped_small_box += 1
                continue
            official = dict(case_fields, slice_idx=slice_idx, label=int(np.uint16(item["label"])))
            official["bounding_boxes"] = _bbox_dict(bboxes)
            out.append(_finish_row(ctx, official, image_rel, where))
    elif cfg.family == "tl":
        stats.flattened += 1
        bio = _tl_profile(profile)
        n_ellipses = len(bio["metric_value_major_axis"])
        if n_ellipses == 0:
            stats.dropped_empty += 1
            warn(f"{where} slice {slice_idx}: empty T/L profile dropped", stacklevel=4)
            return out
        n_clusters = entry.get("n_total_clusters")
        if filtering and ((n_clusters is not None and int(n_clusters) > 1) or (n_clusters is None and n_ellipses > 1)):
            stats.dropped_multi_cluster += 1
            return out
        _require_finite(bio["metric_value_major_axis"] + bio["metric_value_minor_axis"], "metric_value", where)
        official = dict(
            case_fields, slice_idx=slice_idx, label=int(float(ctx.task["target_label"])), biometric_profile=bio
        )
        out.append(_finish_row(ctx, official, image_rel, where))
    else:
        for metric in profile if isinstance(profile, list) else [profile]:
            stats.flattened += 1
            bio = _ad_profile(metric, cfg.slice_dim)
            if cfg.metric_token and bio["metric_type"] != cfg.metric_token.lower():
                stats.dropped_metric_type += 1
                continue
            _require_finite([bio["metric_value"]], "metric_value", where)
            out.append(
                _finish_row(ctx, dict(case_fields, slice_idx=slice_idx, biometric_profile=bio), image_rel, where)
            )
    stats.kept += len(out)
    return out


def iter_rows(
    root: Path,
    config: str,
    *,
    planner_version: str = "1.0.0",
    filtering: bool = True,
    stats: RowStats | None = None,
    overrides: Overrides | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the filtered rows of one config in loader order (no cap, no `mv_row`)."""
    cfg = parse_config_name(config)
    stats = stats if stats is not None else RowStats()
    ctx = _plan_context(Path(root), cfg, planner_version, filtering, overrides)
    cases = ctx.task["test_cases"] if cfg.split == "Test" else ctx.task["train_cases"]
    dim = cfg.slice_dim
    profile_key = PROFILE_KEY_BY_DIM[dim]
    for ci, case in enumerate(cases):
        cwhere = f"{ctx.where} {cfg.split.lower()}_cases[{ci}]"
        image_abs, image_rel = resolve_data_path(root, cfg.dataset, case["image_file"], f"{cwhere} image_file")
        info = case["image_file_info"]
        size3 = [int(np.uint16(v)) for v in info["array_size"]]
        voxel = [f16(v) for v in info["voxel_size"]]
        _require_finite(voxel, "image_file_info.voxel_size", cwhere)
        case_fields: dict[str, Any] = {
            "dataset_name": cfg.dataset,
            "taskID": cfg.task_id,
            "taskType": cfg.task_type,
            "image_file": str(image_abs),
        }
        for key in ("mask_file", "landmark_file"):
            if case.get(key):
                case_fields[key] = str(resolve_data_path(root, cfg.dataset, case[key], f"{cwhere} {key}")[0])
        case_fields.update(
            slice_dim=dim,
            image_size_2d=_drop_axis(size3, dim),
            pixel_size=_drop_axis(voxel, dim),
            image_size_3d=size3,
            voxel_size=voxel,
        )
        for j, entry in enumerate(case.get(profile_key) or []):
            where = f"{cwhere}.{profile_key}[{j}]"
            try:
                rows = _entry_rows(ctx, case_fields, image_rel, entry, where, stats)
            except PlanError:
                raise
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                raise PlanError(
                    f"{where}: malformed slice entry ({type(exc).__name__}: {exc}); expected "
                    "{slice_idx, slice_profile} as in docs/reference.md §1.3; re-download the plan."
                ) from exc
            yield from rows


def official_view(row: dict[str, Any], ds_dir: Path) -> dict[str, Any]:
    """A row's official fields with dataset-relative paths (portable between machines; for comparisons)."""
    view = {k: row[k] for k in OFFICIAL_FIELDS if k in row}
    for key in PATH_FIELDS:
        if key in view:
            path = Path(view[key])
            view[key] = path.relative_to(ds_dir).as_posix() if path.is_relative_to(ds_dir) else str(path)
    return view


def rows_identity_hash(rows: Iterable[dict[str, Any]], ds_dir: Path, n: int = 1000) -> str:
    """SHA-256 over the official fields (relative paths, canonical JSON) of the first `n` rows."""
    digest = hashlib.sha256()
    for i, row in enumerate(rows):
        if i >= n:
            break
        digest.update(json.dumps(official_view(row, ds_dir), sort_keys=True, separators=(",", ":")).encode() + b"\n")
    return digest.hexdigest()
