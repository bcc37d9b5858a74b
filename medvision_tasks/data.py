"""Plan files -> benchmark rows (SPEC §1.2-§1.5): version ceiling, flattening, filters, order and cap.

Rows are plain dicts with the official field names plus `mv_*` plugin fields. Coordinates in
`bounding_boxes` are (row, col) array indices, origin top-left, min/max inclusive. GT values are
float16-rounded as in the official rows.
"""

from __future__ import annotations

import gzip
import json
import re
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PlanError

FAMILY_BY_ANNOTATION = {"BoxSize": "detection", "TumorLesionSize": "tl", "BiometricsFromLandmarks": "ad"}
PLAN_KIND_BY_FAMILY = {"detection": "detection", "tl": "biometry", "ad": "biometry"}
TASK_TYPE_BY_FAMILY = {"detection": "Box-Size", "tl": "Tumor-Lesion-Size", "ad": "Biometrics-From-Landmarks"}
SLICE_DIM_BY_PLANE = {"Sagittal": 0, "Coronal": 1, "Axial": 2}
PROFILE_KEY_BY_DIM = {0: "slice_profiles_x", 1: "slice_profiles_y", 2: "slice_profiles_z"}
PLANE_LETTER_BY_DIM = {0: "x", 1: "y", 2: "z"}
METRIC_TOKENS = ("Distance", "Angle")
MIN_BOX_DIMENSION_PX = 10
MULTI_CLUSTER_FILE = "multi_cluster_samples_v1.0.0_to_v1.1.0.json"
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
    return tuple(int(p) for p in text.split("."))


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
    def fail(field: str, what: str) -> None:
        raise PlanError(f"{path}: field {field} {what}; the plan does not follow the MedVision schema.")

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
        if not isinstance(task["labels_map"], dict):
            fail(f"tasks[{ti}].labels_map", "is not an object")
        for split in ("test_cases", "train_cases"):
            if not isinstance(task[split], list):
                fail(f"tasks[{ti}].{split}", "is not a list")
            for ci, case in enumerate(task[split]):
                if not isinstance(case, dict):
                    fail(f"tasks[{ti}].{split}[{ci}]", "is not an object")
                for key in _CASE_KEYS:
                    if key not in case:
                        fail(f"tasks[{ti}].{split}[{ci}].{key}", "is missing")
                info = case["image_file_info"]
                if (
                    not isinstance(info, dict)
                    or len(info.get("voxel_size", [])) != 3
                    or len(info.get("array_size", [])) != 3
                ):
                    fail(f"tasks[{ti}].{split}[{ci}].image_file_info", "lacks voxel_size[3]/array_size[3]")


def plan_task(plan: dict[str, Any], task_id: str, where: str) -> dict[str, Any]:
    """`tasks[int(NN) - 1]`, asserting its task_ID."""
    index = int(task_id) - 1
    tasks = plan["tasks"]
    if index >= len(tasks) or str(tasks[index].get("task_ID")) != task_id:
        ids = [t.get("task_ID") for t in tasks]
        raise PlanError(f"{where}: no task_ID {task_id!r} at tasks[{index}] (task IDs: {ids}).")
    return tasks[index]


def resolve_data_path(root: Path, dataset: str, value: str, field: str) -> tuple[Path, str]:
    """Absolute path and dataset-relative path of a plan path; rejects paths escaping the data root."""
    ds_dir = (Path(root) / "Datasets" / dataset).resolve()
    p = Path(value)
    if p.is_absolute():
        marker = f"/{dataset}/"
        if p.exists() and p.resolve().is_relative_to(ds_dir):
            candidate = p.resolve()
        elif marker in value:
            candidate = (ds_dir / value.split(marker, 1)[1]).resolve()
        else:
            raise PlanError(
                f"{field} {value!r}: absolute path outside {ds_dir}; plans must hold paths relative to the "
                "dataset folder (or absolute paths containing /<dataset>/, which are re-rooted)."
            )
    else:
        candidate = (ds_dir / p).resolve()
    if not candidate.is_relative_to(ds_dir):
        raise PlanError(f"{field} {value!r} escapes the dataset folder {ds_dir}; fix the plan entry.")
    return candidate, candidate.relative_to(ds_dir).as_posix()


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
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "metric_type",
            "metric_map_name",
            "metric_key_major_axis",
            "metric_value_major_axis",
            "metric_key_minor_axis",
            "metric_value_minor_axis",
            "metric_unit",
        )
    }
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
    """Resolve the A/D name and landmark names from the plan maps (SPEC §3.1)."""

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
    path = ds_dir / MULTI_CLUSTER_FILE
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
    """Counts of one flattening pass (for doctor and tests)."""

    flattened: int = 0
    kept: int = 0
    dropped_multi_box: int = 0
    dropped_small_box: int = 0
    dropped_multi_cluster: int = 0
    dropped_empty: int = 0
    dropped_metric_type: int = 0


def iter_rows(
    root: Path,
    config: str,
    *,
    planner_version: str = "1.0.0",
    filtering: bool = True,
    stats: RowStats | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the filtered rows of one config in loader order (no cap, no `mv_row`)."""
    cfg = parse_config_name(config)
    stats = stats if stats is not None else RowStats()
    ds_dir = dataset_dir(Path(root), cfg.dataset)
    plan_path, version = find_plan(ds_dir, cfg.plan_kind, planner_version)
    plan = read_plan(plan_path)
    task = plan_task(plan, cfg.task_id, str(plan_path))
    where = f"{plan_path} task {cfg.task_id}"
    labels_map = {str(k): str(v) for k, v in task["labels_map"].items()}
    region_task, region_flag = task, False
    if cfg.family == "detection":
        try:
            seg_path, _ = find_plan(ds_dir, "segmentation", planner_version)
            region_task = plan_task(read_plan(seg_path), cfg.task_id, str(seg_path))
        except PlanError:
            region_task, region_flag = task, True
    multicluster = _load_multicluster_keys(ds_dir) if cfg.family == "tl" else None
    cases = task["test_cases"] if cfg.split == "Test" else task["train_cases"]
    dim = cfg.slice_dim
    base = {
        "dataset_name": cfg.dataset,
        "taskID": cfg.task_id,
        "taskType": cfg.task_type,
        "slice_dim": dim,
        "mv_config": cfg.config,
        "mv_family": cfg.family,
        "mv_plan_version": version,
        "mv_image_description": str(task.get("image_description") or ""),
        "mv_modality": str(task.get("image_modality") or ""),
        "mv_multi_instance": not filtering,
    }
    for ci, case in enumerate(cases):
        cwhere = f"{where} {cfg.split.lower()} case {ci}"
        image_abs, image_rel = resolve_data_path(root, cfg.dataset, case["image_file"], f"{cwhere} image_file")
        info = case["image_file_info"]
        size3 = [int(np.uint16(v)) for v in info["array_size"]]
        voxel = [f16(v) for v in info["voxel_size"]]
        case_fields = dict(base)
        case_fields.update(
            image_file=str(image_abs),
            mv_image_file_rel=image_rel,
            image_size_3d=size3,
            voxel_size=voxel,
            image_size_2d=_drop_axis(size3, dim),
            pixel_size=_drop_axis(voxel, dim),
        )
        for key in ("mask_file", "landmark_file"):
            if case.get(key):
                case_fields[key] = str(resolve_data_path(root, cfg.dataset, case[key], f"{cwhere} {key}")[0])
        profiles = case.get(PROFILE_KEY_BY_DIM[dim]) or []
        for entry in profiles:
            slice_idx = int(entry["slice_idx"])
            profile = entry["slice_profile"]
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
                    label = int(np.uint16(item["label"]))
                    name = labels_map.get(str(label))
                    if name is None:
                        raise PlanError(f"{cwhere}: label {label} is not in labels_map {sorted(labels_map)}.")
                    region_name = {str(k): v for k, v in region_task["labels_map"].items()}.get(str(label), name)
                    row = dict(case_fields)
                    row.update(
                        slice_idx=slice_idx,
                        label=label,
                        bounding_boxes=_bbox_dict(bboxes),
                        mv_label_name=name,
                        mv_region_label=str(region_name),
                        mv_region_modality=str(region_task.get("image_modality") or ""),
                        mv_region_from_detection_plan=region_flag,
                    )
                    stats.kept += 1
                    yield row
            elif cfg.family == "tl":
                stats.flattened += 1
                bio = _tl_profile(profile)
                n_ellipses = len(bio["metric_value_major_axis"])
                if n_ellipses == 0:
                    stats.dropped_empty += 1
                    warnings.warn(f"{cwhere} slice {slice_idx}: empty T/L profile dropped", stacklevel=2)
                    continue
                n_clusters = entry.get("n_total_clusters")
                if filtering and (
                    (n_clusters is not None and int(n_clusters) > 1) or (n_clusters is None and n_ellipses > 1)
                ):
                    stats.dropped_multi_cluster += 1
                    continue
                target = int(task["target_label"])
                name = labels_map.get(str(target))
                if name is None:
                    raise PlanError(f"{cwhere}: target_label {target} is not in labels_map {sorted(labels_map)}.")
                row = dict(case_fields)
                row.update(
                    slice_idx=slice_idx,
                    label=target,
                    biometric_profile=bio,
                    mv_label_name=name,
                    mv_region_label=name,
                    mv_region_modality=base["mv_modality"],
                    mv_region_from_detection_plan=False,
                    mv_multicluster_listed=(
                        None if multicluster is None else (image_rel, dim, slice_idx, int(cfg.task_id)) in multicluster
                    ),
                )
                stats.kept += 1
                yield row
            else:
                metrics = profile if isinstance(profile, list) else [profile]
                for metric in metrics:
                    stats.flattened += 1
                    mtype = str(metric["metric_type"])
                    if cfg.metric_token and mtype != cfg.metric_token.lower():
                        stats.dropped_metric_type += 1
                        continue
                    bio = {
                        "metric_type": mtype,
                        "metric_map_name": str(metric["metric_map_name"]),
                        "metric_key": str(metric["metric_key"]),
                        "metric_value": f16(metric["metric_value"]),
                        "metric_unit": str(metric["metric_unit"]),
                        "slice_dim": int(metric.get("slice_dim", dim)),
                    }
                    row = dict(case_fields)
                    row.update(
                        slice_idx=slice_idx,
                        biometric_profile=bio,
                        mv_label_name=None,
                        mv_region_label=None,
                        mv_region_modality=None,
                        mv_region_from_detection_plan=False,
                    )
                    row.update(_ad_names(task, metric, cwhere))
                    stats.kept += 1
                    yield row


def rows_for_config(
    root: Path,
    config: str,
    *,
    planner_version: str = "1.0.0",
    filtering: bool = True,
    cap: int = 0,
    stats: RowStats | None = None,
) -> list[dict[str, Any]]:
    """Filtered rows of one config in loader order with `mv_row`, truncated to `cap` rows (0 = all)."""
    rows: list[dict[str, Any]] = []
    for row in iter_rows(root, config, planner_version=planner_version, filtering=filtering, stats=stats):
        if cap and len(rows) >= cap:
            break
        row["mv_row"] = len(rows)
        rows.append(row)
    return rows
