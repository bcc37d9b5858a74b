"""Synthetic MedVision data root with the real dataset names of every benchmark config
(docs/reference.md §1, §2.2, §2.4).

``build_fixture_root(out_dir)`` writes, byte-deterministically and in about a second, a root in the official
on-disk layout (docs/reference.md §1.1) that holds a plan task for every config of ``medvision_tasks/catalogue.tsv``
(sets main, detection_planeood, detection_taskood, tl_planeood, tl_taskood) on all three planes and both
splits, plus ``expected_rows.json``: for every config, the rows docs/reference.md §1.4 prescribes, decided by the
generator (never read back from the plans).

Volumes are tiny gzip NIfTI-1 files with a diagonal RAS+ affine, shape (14, 12, 11) voxels and spacing
(0.7813, 0.9, 2.5) mm, so the in-plane spacing differs on every plane; Ceph-Biometrics-400 films are (1, 14, 16)
at 0.1 mm. Intensities are exact ramps (``IMAGE_RAMPS``) so tests can pin rendered pixels:
``v[i, j, k] = offset + di*i + dj*j + dk*k + dc*case_index``; CT volumes are int16 HU, MRI/ultrasound float32,
X-ray uint8. Slice k = ``CONSTANT_SLICE`` of the first test case of every sub-dataset is constant
(``CONSTANT_VALUE``). Masks are all-zero placeholders of the image shape and landmark files hold placeholder
coordinates: the plans are the only GT source (the reader reads neither).

Planted branches, on every task, plane and case unless said otherwise:

* detection (per case and plane, slices ascending, labels ascending): slice 1+c one box 10x10 (kept); slice 5
  label 1 one box (kept, constant slice on the axial plane of test case 0) and label 2 with two boxes (multi-box,
  dropped); slice 8 label 2 one box 10x4 (small box, dropped); slice 9 label 2 (stored as 2.0) one box 11x10
  (kept);
* T/L, biometry plan v1.0.0: slice 1+c one ellipse (kept); slice 4 two ellipses (dropped); slice 6 one ellipse
  (kept at v1.0.0, ``n_total_clusters`` 2 at v1.1.0 so dropped at ``latest``, listed in
  ``multi_cluster_samples_v1.0.0_to_v1.1.0.json``); slice 7 one whole ellipse plus one without a minor axis (the
  incomplete one is skipped, row kept); HNTSMRG24 T/L task 01 axial test case 0 also has slice 9 with an empty
  profile (dropped with a warning). v1.1.0 values are +0.5 mm; KiTS23 also has a v1.4.0 plan (+1.0 mm);
* A/D: Ceph-Biometrics-400 interleaves 3 distances and 2 angles in ``biometrics_map`` order on slice 0 (one angle
  below 0.1 degree); FeTA24 has 2 sagittal distances on one repeated slice, 1 coronal, and 2 axial ones written in
  map order with descending slice indices (never sorted);
* paths: test case 1 of every task holds absolute paths of a builder machine (``BUILDER_ROOT``) that the reader
  re-roots; sub-dataset folders (BraTS24-GLI/..., MSD-<Task>/, AMOS22-CT/-MRI, ...) and BraTS24 sequence folders
  ``Images-t1c``/``Images-t2f``; FeTA24 A/D images under ``Images-reoriented/``;
* plans: detection datasets have a segmentation plan except CAMUS and OAIZIB-CM (region fallback); GT values
  are chosen off the float16 grid (e.g. 63.27 mm is stored as 63.28125).

``expected_rows.json``: ``{"configs": {config: {"1.0.0": [key, ...], "latest": [...], "unfiltered": [...]}}}``
where a key is ``[image_rel, slice_dim, slice_idx, label or metric_key, gt]`` and gt is
``[min_r, min_c, max_r, max_c]`` (detection), ``[major, minor]`` mm (T/L) or the value (A/D), float16-rounded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medvision_tasks.demo import tl_metric, write_bytes, write_json_gz, write_nifti

SHAPE = (14, 12, 11)
SPACING = (0.7813, 0.9, 2.5)
CEPH_SHAPE = (1, 14, 16)
CEPH_SPACING = (0.1, 0.1, 0.1)
BUILDER_ROOT = "/builder/cluster/MedVision"
PLANNER_VERSIONS = ("1.0.0", "1.1.0")
LATER_TL_VERSION = "1.4.0"  # KiTS23 only
CONSTANT_SLICE = 5
CONSTANT_VALUE = {"ct": 40, "mri": 7.5, "xray": 90}
N_TEST_CASES, N_TRAIN_CASES = 2, 1
EXPECTED_NAME = "expected_rows.json"
PLANES = ("Sagittal", "Coronal", "Axial")
PROFILE_KEYS = ("slice_profiles_x", "slice_profiles_y", "slice_profiles_z")
IMAGE_RAMPS = {  # kind -> (dtype, offset, di, dj, dk, dc)
    "ct": (np.int16, -400, 37, 13, 101, 5),
    "mri": (np.float32, 0.0, 0.5, 0.25, 3.0, 1.0),
    "xray": (np.uint8, 10, 1, 9, 0, 2),
}
GATED = ("AbdomenAtlas1.0Mini", "FeTA24", "SKM-TEA")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the fixture: folders, modality per task, and how many tasks each plan kind holds."""

    name: str
    modality: str
    description: str
    subsets: tuple[str, ...] = ("",)
    detection_tasks: int = 0
    tl_tasks: int = 0
    ad: str | None = None  # "ceph" or "feta"
    segmentation: bool = True
    task_subsets: tuple[str, ...] = ()  # per detection task, else cycled
    tl_task_subsets: tuple[str, ...] = ()
    task_modalities: tuple[str, ...] = ()  # per detection task, else `modality`
    image_dirs: tuple[str, ...] = ("Images",)  # cycled over task IDs


_MSD_BOX = (
    ("MSD-BrainTumour", "MRI"),
    ("MSD-BrainTumour", "MRI"),
    ("MSD-BrainTumour", "MRI"),
    ("MSD-BrainTumour", "MRI"),
    ("MSD-Colon", "CT"),
    ("MSD-Heart", "MRI"),
    ("MSD-HepaticVessel", "CT"),
    ("MSD-Hippocampus", "MRI"),
    ("MSD-Liver", "CT"),
    ("MSD-Lung", "CT"),
    ("MSD-Pancreas", "CT"),
    ("MSD-Prostate", "MRI"),
    ("MSD-Prostate", "MRI"),
    ("MSD-Spleen", "CT"),
)
_BRATS = ("BraTS24-GLI", "BraTS24-MEN-RT", "BraTS24-MET", "BraTS24-PED")

DATASETS = (
    DatasetSpec("AbdomenAtlas1.0Mini", "CT", "abdominal CT scan", detection_tasks=1),
    DatasetSpec("AbdomenCT-1K", "CT", "abdominal CT scan", detection_tasks=1),
    DatasetSpec(
        "AMOS22", "CT", "abdominal scan", ("AMOS22-CT", "AMOS22-MRI"), detection_tasks=2, task_modalities=("CT", "MRI")
    ),
    DatasetSpec(
        "autoPET-III", "CT", "whole-body CT scan", detection_tasks=2, tl_tasks=1, task_modalities=("CT", "PET")
    ),
    DatasetSpec("BCV15", "CT", "CT scan", ("BCV15-Abdomen", "BCV15-Cervix"), detection_tasks=2),
    DatasetSpec(
        "BraTS24",
        "MRI",
        "brain MRI scan",
        _BRATS,
        detection_tasks=13,
        tl_tasks=12,
        task_subsets=tuple(_BRATS[i % 4] for i in range(13)),
        tl_task_subsets=(*[_BRATS[0]] * 4, _BRATS[1], *[_BRATS[2]] * 3, *[_BRATS[3]] * 4),
        image_dirs=("Images-t1c", "Images-t2f"),
    ),
    DatasetSpec("CAMUS", "Ultrasound", "cardiac ultrasound", detection_tasks=1, segmentation=False),
    DatasetSpec("Ceph-Biometrics-400", "X Ray", "cephalogram (head and neck X-ray)", ad="ceph"),
    DatasetSpec("CrossMoDA", "MRI", "brain MRI scan", detection_tasks=1),
    DatasetSpec("FeTA24", "MRI", "fetal brain MRI scan", detection_tasks=1, ad="feta"),
    DatasetSpec("FLARE22", "CT", "abdominal CT scan", detection_tasks=1),
    DatasetSpec(
        "HNTSMRG24",
        "MRI",
        "head and neck MRI scan",
        ("HNTSMRG24-midRT", "HNTSMRG24-preRT"),
        detection_tasks=2,
        tl_tasks=4,
    ),
    DatasetSpec("ISLES24", "MRI", "brain MRI scan", detection_tasks=2),
    DatasetSpec("KiPA22", "CT", "contrast-enhanced abdominal CT scan", detection_tasks=1, tl_tasks=1),
    DatasetSpec("KiTS23", "CT", "abdominal CT scan", detection_tasks=1, tl_tasks=1),
    DatasetSpec(
        "MSD",
        "CT",
        "scan",
        tuple(dict.fromkeys(s for s, _ in _MSD_BOX)),
        detection_tasks=14,
        tl_tasks=8,
        task_subsets=tuple(s for s, _ in _MSD_BOX),
        tl_task_subsets=(
            "MSD-BrainTumour",
            "MSD-BrainTumour",
            "MSD-Colon",
            "MSD-HepaticVessel",
            "MSD-Liver",
            "MSD-Lung",
            "MSD-Pancreas",
            "MSD-Prostate",
        ),
        task_modalities=tuple(m for _, m in _MSD_BOX),
    ),
    DatasetSpec("OAIZIB-CM", "MRI", "knee MRI scan", ("OAIZIB-CM",), detection_tasks=1, segmentation=False),
    DatasetSpec("SKM-TEA", "MRI", "knee MRI scan", detection_tasks=2),
    DatasetSpec(
        "TopCoW24",
        "CT",
        "head CT angiography",
        ("TopCoW24-CT", "TopCoW24-MR"),
        detection_tasks=2,
        task_modalities=("CT", "MRI"),
    ),
)
DATASET_NAMES = tuple(d.name for d in DATASETS)


# ------------------------------------------------------------------------------------------- writing
def ramp_volume(kind: str, shape: tuple[int, int, int], case_index: int, constant: bool) -> np.ndarray:
    """The fixture intensity ramp of IMAGE_RAMPS (slice CONSTANT_SLICE flattened when `constant`)."""
    dtype, offset, di, dj, dk, dc = IMAGE_RAMPS[kind]
    i, j, k = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    vol = (offset + di * i + dj * j + dk * k + dc * case_index).astype(dtype)
    if constant and shape[2] > CONSTANT_SLICE:
        vol[:, :, CONSTANT_SLICE] = CONSTANT_VALUE[kind]
    return vol


def _image_kind(modality: str) -> str:
    low = modality.lower()
    return "ct" if low in ("ct", "pet") else "xray" if low == "x ray" else "mri"


def _f16(value: float) -> float:
    return float(np.float16(value))


# ------------------------------------------------------------------------------------------ cases
@dataclass
class _Case:
    case_id: str
    index: int  # 0-based over test cases, then train cases
    split: str
    image_rel: str
    mask_rel: str
    info: dict[str, Any]

    def plan_path(self, rel: str, dataset: str) -> str:
        """Test case 1 holds absolute builder paths; every other case relative ones."""
        return f"{BUILDER_ROOT}/Datasets/{dataset}/{rel}" if self.split == "test" and self.index == 1 else rel


class _Volumes:
    """Writes each (subset, image folder, case) volume once and shares it between tasks and plans."""

    def __init__(self, folder: Path, spec: DatasetSpec) -> None:
        self.folder, self.spec = folder, spec
        self._cases: dict[tuple[str, str], list[_Case]] = {}

    def cases(self, subset: str, image_dir: str, modality: str) -> list[_Case]:
        key = (subset, image_dir)
        if key not in self._cases:
            prefix = f"{subset}/" if subset else ""
            token = (subset or self.spec.name).replace(".", "").replace("-", "_").lower()
            shape, spacing = (CEPH_SHAPE, CEPH_SPACING) if self.spec.ad == "ceph" else (SHAPE, SPACING)
            kind = _image_kind(modality)
            out = []
            for index in range(N_TEST_CASES + N_TRAIN_CASES):
                split = "test" if index < N_TEST_CASES else "train"
                case_id = f"{token}_{index:03d}"
                image_rel = f"{prefix}{image_dir}/{case_id}.nii.gz"
                mask_rel = f"{prefix}Masks/{case_id}.nii.gz"
                constant = index == 0 and self.spec.ad != "ceph"
                info = write_nifti(self.folder / image_rel, ramp_volume(kind, shape, index, constant), spacing)
                if not (self.folder / mask_rel).exists():
                    write_nifti(self.folder / mask_rel, np.zeros(shape, np.uint8), spacing)
                out.append(_Case(case_id, index, split, image_rel, mask_rel, info))
            self._cases[key] = out
        return self._cases[key]


def _in_plane(values: list[Any], dim: int) -> list[Any]:
    return [v for i, v in enumerate(values) if i != dim]


def _bbox(r0: int, c0: int, h: int, w: int, spacing_hw: list[float], image_hw: list[int]) -> dict[str, Any]:
    if r0 + h > image_hw[0] or c0 + w > image_hw[1]:
        raise RuntimeError(f"fixture box {(r0, c0, h, w)} leaves the {image_hw} slice")
    return {
        "min_coords": [r0, c0],
        "max_coords": [r0 + h - 1, c0 + w - 1],
        "center_coords": [r0 + (h - 1) / 2, c0 + (w - 1) / 2],
        "dimensions": [h, w],
        "sizes": [round(h * spacing_hw[0], 4), round(w * spacing_hw[1], 4)],
        "mask_image_ratio": round(h * w / (image_hw[0] * image_hw[1]), 6),
    }


def _detection_entries(
    case: _Case, task_no: int, dim: int
) -> tuple[list[dict[str, Any]], list[list[Any]], list[list[Any]]]:
    """Slice entries of one case and plane, with the kept and all (unfiltered) expected keys."""
    hw = _in_plane(case.info["array_size"], dim)
    sp = _in_plane(case.info["voxel_size"], dim)
    c, t = case.index, task_no
    entries = [
        {"slice_idx": 1 + c, "slice_profile": [{"label": 1, "bboxes": [_bbox(c % 2, t % 2, 10, 10, sp, hw)]}]},
        {
            "slice_idx": 5,
            "slice_profile": [
                {"label": 1, "bboxes": [_bbox(1, 0, 10, 11, sp, hw)]},
                {"label": 2, "bboxes": [_bbox(0, 0, 3, 3, sp, hw), _bbox(5, 5, 4, 4, sp, hw)]},
            ],
        },
        {"slice_idx": 8, "slice_profile": [{"label": 2, "bboxes": [_bbox(0, 1, 10, 4, sp, hw)]}]},
        {"slice_idx": 9, "slice_profile": [{"label": 2.0, "bboxes": [_bbox(0, 0, 11, 10, sp, hw)]}]},
    ]
    kept, every = [], []
    for entry in entries:
        for item in entry["slice_profile"]:
            boxes = item["bboxes"]
            b = boxes[0]
            key = [case.image_rel, dim, entry["slice_idx"], int(item["label"]), [*b["min_coords"], *b["max_coords"]]]
            every.append(key)
            if len(boxes) == 1 and min(b["dimensions"]) >= 10:
                kept.append(key)
    return entries, kept, every


def _tl_entries(
    case: _Case, task_no: int, dim: int, target: int, version: str, empty_slice: bool
) -> tuple[list[dict[str, Any]], dict[str, list[list[Any]]], list[int]]:
    """T/L slice entries of one case and plane for one plan version, expected keys, multi-cluster slices."""
    later = version != "1.0.0"
    bump = {"1.0.0": 0.0, "1.1.0": 0.5, LATER_TL_VERSION: 1.0}[version]
    base = 12.34 + case.index + task_no / 10 + dim + bump
    # (slice_idx, ellipses as (major, minor|None), n_total_clusters at v1.1.0+)
    layout: list[tuple[int, list[tuple[float, float | None]], int]] = [
        (1 + case.index, [(base, base / 2)], 1),
        (4, [(base + 1, base / 3), (6.11, 4.07)], 2),
        (6, [(base + 2, base / 2 + 1)], 2),
        (7, [(base + 3, 5.55), (3.21, None)], 1),
    ]
    if empty_slice:
        layout.append((9, [], 0))
    entries, keys = [], {"kept": [], "every": [], "latest": []}
    multi_cluster = []
    for slice_idx, ellipses, clusters in layout:
        profile = [
            [tl_metric("L-1-2", major)] + ([tl_metric("L-3-4", minor)] if minor is not None else [])
            for major, minor in ellipses
        ]
        entry: dict[str, Any] = {"slice_idx": slice_idx, "slice_profile": profile}
        if later:
            entry["n_total_clusters"] = clusters
        entries.append(entry)
        complete = [(a, b) for a, b in ellipses if b is not None]
        if not complete:
            continue
        key = [case.image_rel, dim, slice_idx, target, [_f16(complete[0][0]), _f16(complete[0][1])]]
        keys["every"].append(key)
        if len(complete) == 1 and not later:
            keys["kept"].append(key)
        if later and clusters <= 1:
            keys["latest"].append(key)
        if clusters > 1 and len(complete) == 1:
            multi_cluster.append(slice_idx)
    return entries, keys, multi_cluster


# ------------------------------------------------------------------------------------------ plans
def _plan(dataset: str, kind: str, version: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "dataset_info": {"dataset": dataset, "plan_kind": kind, "planner_version": version, "fixture": True},
        "tasks_number": len(tasks),
        "tasks": tasks,
    }


def _plan_name(kind: str, version: str) -> str:
    return f"benchmark_plan_{kind}_v{version}.json.gz"


def _config(dataset: str, annotation: str, task_no: int, dim: int, split: str, token: str | None = None) -> str:
    mid = f"_{token}" if token else ""
    return f"{dataset}_{annotation}{mid}_Task{task_no:02d}_{PLANES[dim]}_{split.capitalize()}"


class _Expected:
    def __init__(self) -> None:
        self.configs: dict[str, dict[str, list[list[Any]]]] = {}

    def add(self, config: str, mode: str, keys: list[list[Any]]) -> None:
        self.configs.setdefault(config, {"1.0.0": [], "latest": [], "unfiltered": []})[mode].extend(keys)


def _case_record(case: _Case, dataset: str, with_mask: bool, landmark_rel: str | None) -> dict[str, Any]:
    rec: dict[str, Any] = {"case_ID": case.case_id, "image_file": case.plan_path(case.image_rel, dataset)}
    if with_mask:
        rec["mask_file"] = case.plan_path(case.mask_rel, dataset)
    if landmark_rel:
        rec["landmark_file"] = case.plan_path(landmark_rel, dataset)
    rec["image_file_info"] = case.info
    return rec


def _labels(dataset: str, task_no: int) -> dict[str, str]:
    return {"1": f"{dataset.lower()} target {task_no} a", "2": f"{dataset.lower()} target {task_no} b"}


def _write_detection(folder: Path, spec: DatasetSpec, vols: _Volumes, expected: _Expected) -> None:
    tasks, seg_tasks = [], []
    for t in range(1, spec.detection_tasks + 1):
        subset = spec.task_subsets[t - 1] if spec.task_subsets else spec.subsets[(t - 1) % len(spec.subsets)]
        modality = spec.task_modalities[t - 1] if spec.task_modalities else spec.modality
        image_dir = spec.image_dirs[(t - 1) % len(spec.image_dirs)]
        cases = {"test": [], "train": []}
        seg_cases = {"test": [], "train": []}
        for case in vols.cases(subset, image_dir, modality):
            rec = _case_record(case, spec.name, True, None)
            seg = dict(rec)
            for dim, key in enumerate(PROFILE_KEYS):
                entries, kept, every = _detection_entries(case, t, dim)
                rec[key] = entries
                seg[key] = [{"slice_idx": e["slice_idx"], "slice_profile": []} for e in entries]
                config = _config(spec.name, "BoxSize", t, dim, case.split)
                expected.add(config, "1.0.0", kept)
                expected.add(config, "latest", kept)
                expected.add(config, "unfiltered", every)
            cases[case.split].append(rec)
            seg_cases[case.split].append(seg)
        common = {
            "task_ID": f"{t:02d}",
            "image_modality": modality,
            "image_description": spec.description,
            "labels_map": _labels(spec.name, t),
        }
        tasks.append({**common, "task_type": "Box-Size", "train_cases": cases["train"], "test_cases": cases["test"]})
        seg_tasks.append(
            {**common, "task_type": "Mask-Size", "train_cases": seg_cases["train"], "test_cases": seg_cases["test"]}
        )
    write_json_gz(folder / _plan_name("detection", "1.0.0"), _plan(spec.name, "detection", "1.0.0", tasks))
    if spec.segmentation:
        write_json_gz(
            folder / _plan_name("segmentation", "1.0.0"), _plan(spec.name, "segmentation", "1.0.0", seg_tasks)
        )


_TL_MAPS = {
    "landmarks_map": {
        "P1": "major axis end 1",
        "P2": "major axis end 2",
        "P3": "minor axis end 1",
        "P4": "minor axis end 2",
    },
    "lines_map": {
        "L-1-2": {"name": "major axis", "element_map_name": "landmarks_map", "element_keys": ["P1", "P2"]},
        "L-3-4": {"name": "minor axis", "element_map_name": "landmarks_map", "element_keys": ["P3", "P4"]},
    },
    "angles_map": {},
}


def _write_tl(folder: Path, spec: DatasetSpec, vols: _Volumes, expected: _Expected) -> None:
    versions = list(PLANNER_VERSIONS) + ([LATER_TL_VERSION] if spec.name == "KiTS23" else [])
    latest = versions[-1]
    tasks: dict[str, list[dict[str, Any]]] = {v: [] for v in versions}
    multi_cluster_file = []
    for t in range(1, spec.tl_tasks + 1):
        subset = spec.tl_task_subsets[t - 1] if spec.tl_task_subsets else spec.subsets[(t - 1) % len(spec.subsets)]
        modality = spec.task_modalities[0] if spec.task_modalities else spec.modality
        image_dir = spec.image_dirs[(t - 1) % len(spec.image_dirs)]
        target = 1 + t % 2
        for version in versions:
            cases = {"test": [], "train": []}
            for case in vols.cases(subset, image_dir, modality):
                prefix = f"{subset}/" if subset else ""
                landmark_rel = f"{prefix}Landmarks-Label{target}-v{version}/{case.case_id}.json.gz"
                write_json_gz(folder / landmark_rel, {"slices": []})
                rec = _case_record(case, spec.name, True, landmark_rel)
                for dim, key in enumerate(PROFILE_KEYS):
                    empty = (
                        spec.name == "HNTSMRG24" and t == 1 and dim == 2 and case.split == "test" and case.index == 0
                    )
                    entries, keys, multi = _tl_entries(case, t, dim, target, version, empty)
                    rec[key] = entries
                    config = _config(spec.name, "TumorLesionSize", t, dim, case.split)
                    if version == "1.0.0":
                        expected.add(config, "1.0.0", keys["kept"])
                        expected.add(config, "unfiltered", keys["every"])
                    if version == latest:
                        expected.add(config, "latest", keys["latest"])
                    if version == "1.1.0":
                        multi_cluster_file += [
                            {
                                "image_file": case.image_rel,
                                "slice_dim": "xyz"[dim],
                                "slice_idx": s,
                                "task_ID": f"{t:02d}",
                            }
                            for s in multi
                        ]
                cases[case.split].append(rec)
            tasks[version].append(
                {
                    "task_ID": f"{t:02d}",
                    "task_type": "Tumor-Lesion-Size",
                    "image_modality": modality,
                    "image_description": spec.description,
                    "labels_map": _labels(spec.name, t),
                    "target_label": target,
                    "cluster_size_threshold": 10,
                    **_TL_MAPS,
                    "biometrics_map": [
                        {"metric_type": "distance", "metric_map_name": "lines_map", "metric_key": k, "slice_dim": 2}
                        for k in ("L-1-2", "L-3-4")
                    ],
                    "train_cases": cases["train"],
                    "test_cases": cases["test"],
                }
            )
    for version in versions:
        write_json_gz(folder / _plan_name("biometry", version), _plan(spec.name, "biometry", version, tasks[version]))
    text = json.dumps(multi_cluster_file, indent=2) + "\n"
    write_bytes(folder / "multi_cluster_samples_v1.0.0_to_v1.1.0.json", text.encode("utf-8"))


def _line(name: str, a: str, b: str) -> dict[str, Any]:
    return {"name": name, "element_map_name": "landmarks_map", "element_keys": [a, b]}


def _angle(name: str, a: str, b: str) -> dict[str, Any]:
    return {"name": name, "element_map_name": "lines_map", "element_keys": [a, b]}


# (metric_type, metric_key, slice_dim, base value, slice index per case) in biometrics_map order
_CEPH_METRICS = (
    ("distance", "L-1-2", 0, 63.27, 0),
    ("angle", "A-1", 0, 81.93, 0),
    ("distance", "L-2-3", 0, 44.44, 0),
    ("angle", "A-2", 0, 0.05, 0),
    ("distance", "L-1-3", 0, 71.07, 0),
)
_FETA_METRICS = (
    ("distance", "L-1-2", 0, 38.71, 7),  # sagittal, corpus callosum length
    ("distance", "L-3-4", 0, 17.33, 7),  # sagittal, vermis height (same slice)
    ("distance", "L-5-6", 2, 61.09, 6),  # axial, brain biparietal diameter
    ("distance", "L-7-8", 2, 70.41, 3),  # axial, skull biparietal diameter (lower slice, map order kept)
    ("distance", "L-9-10", 1, 33.79, 4),  # coronal, transverse cerebellar diameter
)


def _ad_task(kind: str) -> dict[str, Any]:
    if kind == "ceph":
        return {
            "task_ID": "01",
            "task_type": "Biometrics-From-Landmarks",
            "image_modality": "X Ray",
            "image_description": "cephalogram (head and neck X-ray)",
            "labels_map": {},
            "landmarks_map": {"P1": "sella", "P2": "nasion", "P3": "subspinale", "P4": "porion"},
            "lines_map": {
                "L-1-2": _line("anterior cranial base", "P1", "P2"),
                "L-2-3": _line("", "P2", "P3"),
                "L-1-3": _line("", "P1", "P3"),
                "L-3-4": _line("Frankfort horizontal plane", "P3", "P4"),
            },
            "angles_map": {"A-1": _angle("SNA angle", "L-1-2", "L-2-3"), "A-2": _angle("", "L-1-3", "L-3-4")},
            "biometrics_map": [
                {
                    "metric_type": m,
                    "metric_map_name": "lines_map" if m == "distance" else "angles_map",
                    "metric_key": k,
                    "slice_dim": d,
                }
                for m, k, d, _, _ in _CEPH_METRICS
            ],
        }
    names = (
        "corpus callosum length",
        "vermis height",
        "brain biparietal diameter",
        "skull biparietal diameter",
        "transverse cerebellar diameter",
    )
    return {
        "task_ID": "01",
        "task_type": "Biometrics-From-Landmarks",
        "image_modality": "",
        "image_description": "",
        "labels_map": {},
        "landmarks_map": {f"P{i}": f"landmark {i}" for i in range(1, 11)},
        "lines_map": {
            f"L-{2 * i + 1}-{2 * i + 2}": _line(n, f"P{2 * i + 1}", f"P{2 * i + 2}") for i, n in enumerate(names)
        },
        "angles_map": {},
        "biometrics_map": [
            {"metric_type": m, "metric_map_name": "lines_map", "metric_key": k, "slice_dim": d}
            for m, k, d, _, _ in _FETA_METRICS
        ],
    }


def _write_ad(folder: Path, spec: DatasetSpec, vols: _Volumes, expected: _Expected) -> None:
    metrics = _CEPH_METRICS if spec.ad == "ceph" else _FETA_METRICS
    image_dir = "Images" if spec.ad == "ceph" else "Images-reoriented"
    modality = "X Ray" if spec.ad == "ceph" else "MRI"
    task = _ad_task(str(spec.ad))
    cases = {"test": [], "train": []}
    for case in vols.cases("", image_dir, modality):
        landmark_rel = f"Landmarks/{case.case_id}.json.gz"
        write_json_gz(folder / landmark_rel, {f"P{i}": [0, i, i + 1] for i in range(1, 11)})
        rec = _case_record(case, spec.name, False, landmark_rel)
        profiles: list[list[dict[str, Any]]] = [[], [], []]
        for mtype, key, dim, value, slice_idx in metrics:
            v = round(value + case.index * 0.37, 4)
            metric = {
                "metric_type": mtype,
                "metric_map_name": "lines_map" if mtype == "distance" else "angles_map",
                "metric_key": key,
                "metric_value": v,
                "metric_unit": "mm" if mtype == "distance" else "degree",
                "slice_dim": dim,
            }
            idx = slice_idx + (0 if spec.ad == "ceph" else case.index % 2)
            profiles[dim].append({"slice_idx": idx, "slice_profile": [metric]})
            keys = [[case.image_rel, dim, idx, key, _f16(v)]]
            tokens = ("Distance", "Angle") if spec.ad == "ceph" else (None,)
            for token in tokens:
                if token is None or token.lower() == mtype:
                    config = _config(spec.name, "BiometricsFromLandmarks", 1, dim, case.split, token)
                    for mode in ("1.0.0", "latest", "unfiltered"):
                        expected.add(config, mode, keys)
        rec.update(zip(PROFILE_KEYS, profiles))
        cases[case.split].append(rec)
    task.update(train_cases=cases["train"], test_cases=cases["test"])
    write_json_gz(folder / _plan_name("biometry", "1.0.0"), _plan(spec.name, "biometry", "1.0.0", [task]))


# ------------------------------------------------------------------------------------------ public
def build_fixture_root(out_dir: Path, datasets: tuple[str, ...] | None = None) -> Path:
    """Write the fixture root (all of DATASETS, or the named ones) into `out_dir` and return it."""
    root = Path(out_dir)
    expected = _Expected()
    unknown = set(datasets or ()) - set(DATASET_NAMES)
    if unknown:
        raise ValueError(f"unknown fixture datasets {sorted(unknown)}; choose from {DATASET_NAMES}")
    for spec in DATASETS:
        if datasets is not None and spec.name not in datasets:
            continue
        folder = root / "Datasets" / spec.name
        vols = _Volumes(folder, spec)
        if spec.detection_tasks:
            _write_detection(folder, spec, vols, expected)
        if spec.tl_tasks:
            _write_tl(folder, spec, vols, expected)
        if spec.ad:
            _write_ad(folder, spec, vols, expected)
    # A/D rows of one config come per case in map order; the loop above appends per case, so the order holds.
    blob = {"builder_root": BUILDER_ROOT, "configs": dict(sorted(expected.configs.items()))}
    write_bytes(root / EXPECTED_NAME, (json.dumps(blob, indent=1) + "\n").encode("utf-8"))
    return root


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    print(build_fixture_root(Path(sys.argv[1])))
