"""Tests for the phantom data-root generator (docs/reference.md §2.7): determinism, GT = geometry, manifest counts."""

from __future__ import annotations

import gzip
import json
import math
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from medvision_tasks import demo

PLANES = ("Sagittal", "Coronal", "Axial")
PROFILE_KEYS = ("slice_profiles_x", "slice_profiles_y", "slice_profiles_z")


# ---------------------------------------------------------------------------------------------
# Fixtures and small independent readers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("phantom") / "root"
    start = time.perf_counter()
    root = demo.generate_phantom(out, seed=0)
    seconds = time.perf_counter() - start
    manifest = json.loads((root / demo.MANIFEST_NAME).read_text(encoding="utf-8"))
    return {"root": root, "seconds": seconds, "manifest": manifest}


def read_json_gz(path: Path) -> Any:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def read_plan(root: Path, dataset: str, kind: str, ceiling: str = "1.0.0") -> dict[str, Any]:
    """Highest ``benchmark_plan_<kind>_v*.json.gz`` at or below the ceiling (``latest`` = highest)."""
    folder = root / "Datasets" / dataset
    prefix = f"benchmark_plan_{kind}_v"
    versions = sorted(
        (p.name[len(prefix) : -len(".json.gz")] for p in folder.glob(f"{prefix}*.json.gz")), key=version_tuple
    )
    allowed = [v for v in versions if ceiling == "latest" or version_tuple(v) <= version_tuple(ceiling)]
    return read_json_gz(folder / f"{prefix}{allowed[-1]}.json.gz")


def all_cases(plan: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (split, task, case)
        for task in plan["tasks"]
        for split in ("test_cases", "train_cases")
        for case in task[split]
    ]


def components_4(mask2d: np.ndarray) -> list[list[tuple[int, int]]]:
    """4-connected components by breadth-first search, in raster order of their first pixel."""
    todo = {(int(r), int(c)) for r, c in np.argwhere(mask2d)}
    comps = []
    for start in sorted(todo):
        if start not in todo:
            continue
        todo.discard(start)
        queue, comp = deque([start]), []
        while queue:
            r, c = queue.popleft()
            comp.append((r, c))
            for nb in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if nb in todo:
                    todo.discard(nb)
                    queue.append(nb)
        comps.append(comp)
    return comps


def extent(comp: list[tuple[int, int]]) -> tuple[int, int, int, int]:
    rows = [p[0] for p in comp]
    cols = [p[1] for p in comp]
    return min(rows), min(cols), max(rows), max(cols)


def count_rows(root: Path, config: str, filtered: bool = True, ceiling: str = "1.0.0") -> int:
    """docs/reference.md §1.4, written independently of the generator: parse, flatten, filter, count."""
    parts = config.split("_")
    dataset, annotation, split = parts[0], parts[1], parts[-1]
    metric_token = parts[2] if parts[2] in ("Distance", "Angle") else None
    task_id = parts[-3].removeprefix("Task")
    plane = PLANES.index(parts[-2])
    kind = "detection" if annotation == "BoxSize" else "biometry"
    task = read_plan(root, dataset, kind, ceiling)["tasks"][int(task_id) - 1]
    assert task["task_ID"] == task_id
    n = 0
    for case in task["test_cases" if split == "Test" else "train_cases"]:
        for entry in case[PROFILE_KEYS[plane]]:
            profile = entry["slice_profile"]
            if annotation == "BoxSize":
                for item in profile:
                    boxes = item["bboxes"]
                    n += (not filtered) or (len(boxes) == 1 and min(boxes[0]["dimensions"]) >= 10)
            elif annotation == "TumorLesionSize":
                ellipses = [e for e in profile if {m["metric_key"] for m in e} >= {"L-1-2", "L-3-4"}]
                assert ellipses, "no empty T/L profile is expected"
                if "n_total_clusters" in entry:
                    n += (not filtered) or entry["n_total_clusters"] <= 1
                else:
                    n += (not filtered) or len(ellipses) <= 1
            else:
                for metric in profile:
                    n += metric_token is None or metric["metric_type"] == metric_token.lower()
    return n


def nifti_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.nii.gz"))


# ---------------------------------------------------------------------------------------------
# Determinism, size and speed
# ---------------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(phantom: dict[str, Any], tmp_path: Path) -> None:
    first = phantom["root"]
    second = demo.generate_phantom(tmp_path / "again", seed=0)
    names_a = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    names_b = sorted(p.relative_to(second).as_posix() for p in second.rglob("*") if p.is_file())
    assert names_a == names_b
    for name in names_a:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_gzip_headers_have_no_mtime_or_name(phantom: dict[str, Any]) -> None:
    for path in sorted(phantom["root"].rglob("*.gz")):
        header = path.read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b", path
        assert header[3] & 0x08 == 0, f"{path}: FNAME flag set"
        assert header[4:8] == b"\x00\x00\x00\x00", f"{path}: non-zero mtime"


def test_other_seed_changes_the_data(phantom: dict[str, Any], tmp_path: Path) -> None:
    other = demo.generate_phantom(tmp_path / "seed1", seed=1)
    name = "Datasets/KiTS23/Images/case_00000.nii.gz"
    assert (other / name).read_bytes() != (phantom["root"] / name).read_bytes()
    assert json.loads((other / demo.MANIFEST_NAME).read_text())["seed"] == 1


def test_generation_is_fast_and_small(phantom: dict[str, Any]) -> None:
    total = sum(p.stat().st_size for p in phantom["root"].rglob("*") if p.is_file())
    print(f"phantom generation {phantom['seconds']:.2f} s, {total} bytes")
    assert phantom["seconds"] < 30
    assert total < 8 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Layout and geometry coverage
# ---------------------------------------------------------------------------------------------


def test_layout_and_referenced_files(phantom: dict[str, Any]) -> None:
    root = phantom["root"]
    assert phantom["manifest"]["demo_version"] == demo.DEMO_VERSION
    expected = {
        "KiTS23": {"detection", "segmentation", "biometry"},
        "OAIZIB-CM": {"detection"},
        "Ceph-Biometrics-400": {"biometry"},
        "FeTA24": {"biometry"},
    }
    for dataset, kinds in expected.items():
        folder = root / "Datasets" / dataset
        for kind in kinds:
            plan = read_plan(root, dataset, kind)
            assert plan["dataset_info"]["dataset"] == dataset
            assert plan["tasks_number"] == len(plan["tasks"]) == 1
            for task in plan["tasks"]:
                assert task["task_ID"] == "01"
                assert len(task["test_cases"]) >= 2 and len(task["train_cases"]) >= 1
                for key in ("task_type", "image_modality", "image_description", "labels_map"):
                    assert key in task
            for _, _, case in all_cases(plan):
                for key in ("image_file", "mask_file", "landmark_file"):
                    if key in case:
                        assert not Path(case[key]).is_absolute()
                        assert (folder / case[key]).is_file(), case[key]
                assert set(PROFILE_KEYS) <= set(case)
                info = case["image_file_info"]
                assert set(info) >= {"voxel_size", "affine", "orientation", "array_size"}
                assert info["orientation"] == "RAS"
    det = read_plan(root, "OAIZIB-CM", "detection")
    assert det["tasks"][0]["test_cases"][0]["image_file"].startswith("OAIZIB-CM/Images/")
    feta = read_plan(root, "FeTA24", "biometry")["tasks"][0]
    assert feta["image_modality"] == "" and feta["image_description"] == ""
    assert feta["test_cases"][0]["image_file"].startswith("Images-reoriented/")
    assert (root / "Datasets/KiTS23/benchmark_plan_biometry_v1.1.0.json.gz").is_file()


def test_volumes_are_ras_diagonal_and_match_plans(phantom: dict[str, Any]) -> None:
    root = phantom["root"]
    infos: dict[Path, dict[str, Any]] = {}
    for dataset, kind in (
        ("KiTS23", "detection"),
        ("OAIZIB-CM", "detection"),
        ("Ceph-Biometrics-400", "biometry"),
        ("FeTA24", "biometry"),
    ):
        for _, _, case in all_cases(read_plan(root, dataset, kind)):
            for key in ("image_file", "mask_file"):
                if key in case:
                    infos[root / "Datasets" / dataset / case[key]] = case["image_file_info"]
    files = nifti_files(root)
    assert len(files) == 18
    for path in files:
        img = nib.load(path)
        assert nib.aff2axcodes(img.affine) == ("R", "A", "S"), path
        assert np.count_nonzero(img.affine[:3, :3] - np.diag(np.diag(img.affine[:3, :3]))) == 0
        if path in infos:
            info = infos[path]
            assert list(img.shape) == info["array_size"]
            np.testing.assert_allclose(img.header.get_zooms(), info["voxel_size"], atol=1e-6)
            np.testing.assert_allclose(img.affine, info["affine"], atol=1e-5)
    assert sorted(infos) == files


def test_geometry_coverage(phantom: dict[str, Any]) -> None:
    root = phantom["root"]
    ct = nib.load(root / "Datasets/KiTS23/Images/case_00000.nii.gz")
    assert ct.get_data_dtype() == np.int16
    assert ct.shape[0] != ct.shape[1] and ct.shape[2] < ct.shape[0]
    assert len(set(np.round(ct.header.get_zooms(), 3))) == 3
    assert ct.get_fdata().min() <= -900
    ceph = nib.load(root / "Datasets/Ceph-Biometrics-400/Images/001.nii.gz")
    assert ceph.shape == (1, 193, 240)
    np.testing.assert_allclose(ceph.header.get_zooms(), (0.1, 0.1, 0.1), atol=1e-6)
    mri = nib.load(root / "Datasets/OAIZIB-CM/OAIZIB-CM/Images/oaizib_001_0000.nii.gz")
    assert mri.get_fdata().min() >= 0


def test_constant_slice_has_labels_and_kept_rows(phantom: dict[str, Any]) -> None:
    root = phantom["root"]
    constants = phantom["manifest"]["planted"]["constant_slices"]
    assert constants
    plan = read_plan(root, "KiTS23", "detection")
    for item in constants:
        folder = root / "Datasets" / item["dataset"]
        image = nib.load(folder / item["image_file"]).get_fdata()
        plane = np.take(image, item["slice_idx"], axis=item["slice_dim"])
        assert plane.min() == plane.max() == item["value"]
        case = next(c for _, _, c in all_cases(plan) if c["case_ID"] == item["case_ID"])
        mask = nib.load(folder / case["mask_file"]).get_fdata()
        assert np.take(mask, item["slice_idx"], axis=item["slice_dim"]).any()
        entry = next(e for e in case["slice_profiles_z"] if e["slice_idx"] == item["slice_idx"])
        kept = {i["label"] for i in entry["slice_profile"] if len(i["bboxes"]) == 1}
        det_kept = {r["label"] for r in item["kept_rows"] if "BoxSize" in r["config"]}
        assert det_kept and det_kept <= kept


# ---------------------------------------------------------------------------------------------
# GT equals geometry
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["KiTS23", "OAIZIB-CM"])
def test_detection_boxes_equal_mask_components(phantom: dict[str, Any], dataset: str) -> None:
    root = phantom["root"]
    folder = root / "Datasets" / dataset
    for _, _, case in all_cases(read_plan(root, dataset, "detection")):
        img = nib.load(folder / case["mask_file"])
        mask = np.asarray(img.dataobj).astype(int)
        zooms = img.header.get_zooms()
        height, width = mask.shape[:2]
        entries = case["slice_profiles_z"]
        assert [e["slice_idx"] for e in entries] == sorted(
            {int(z) for z in np.nonzero(mask.any(axis=(0, 1)))[0]}
        )
        assert case["slice_profiles_x"] == [] and case["slice_profiles_y"] == []
        for entry in entries:
            plane = mask[:, :, entry["slice_idx"]]
            labels = [item["label"] for item in entry["slice_profile"]]
            assert labels == sorted(int(v) for v in np.unique(plane) if v)
            for item in entry["slice_profile"]:
                comps = components_4(plane == item["label"])
                expected = []
                for comp in comps:
                    r0, c0, r1, c1 = extent(comp)
                    expected.append(((r0, c0), (r1, c1), len(comp)))
                got = [(tuple(b["min_coords"]), tuple(b["max_coords"])) for b in item["bboxes"]]
                assert sorted(got) == sorted(e[:2] for e in expected)
                for box in item["bboxes"]:
                    (r0, c0), (r1, c1) = box["min_coords"], box["max_coords"]
                    n_pixels = next(e[2] for e in expected if e[:2] == ((r0, c0), (r1, c1)))
                    assert box["dimensions"] == [r1 - r0 + 1, c1 - c0 + 1]
                    assert box["center_coords"] == [(r0 + r1) / 2, (c0 + c1) / 2]
                    np.testing.assert_allclose(
                        box["sizes"],
                        [box["dimensions"][0] * zooms[0], box["dimensions"][1] * zooms[1]],
                        atol=1e-4,
                    )
                    assert box["mask_image_ratio"] == pytest.approx(n_pixels / (height * width), abs=1e-6)


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_tl_axes_equal_drawn_ellipses(phantom: dict[str, Any], version: str) -> None:
    root = phantom["root"]
    folder = root / "Datasets/KiTS23"
    plan = read_json_gz(folder / f"benchmark_plan_biometry_v{version}.json.gz")
    task = plan["tasks"][0]
    assert task["target_label"] == 2 and task["labels_map"] == {"1": "kidney", "2": "kidney tumor"}
    threshold = task["cluster_size_threshold"]
    shrink = 0 if version == "1.0.0" else 1
    for _, _, case in all_cases(plan):
        img = nib.load(folder / case["mask_file"])
        mask = np.asarray(img.dataobj).astype(int)
        zooms = np.asarray(img.header.get_zooms(), dtype=np.float64)
        landmarks = read_json_gz(folder / case["landmark_file"])["slices"]
        assert [s["slice_idx"] for s in landmarks] == [e["slice_idx"] for e in case["slice_profiles_z"]]
        expected_slices = []
        for z in range(mask.shape[2]):
            comps = components_4(mask[:, :, z] == 2)
            if any(len(c) >= threshold for c in comps):
                expected_slices.append(z)
        assert [e["slice_idx"] for e in case["slice_profiles_z"]] == expected_slices
        for entry, marks in zip(case["slice_profiles_z"], landmarks):
            comps = components_4(mask[:, :, entry["slice_idx"]] == 2)
            fitted = [c for c in comps if len(c) >= threshold]
            assert ("n_total_clusters" in entry) == (version != "1.0.0")
            if version != "1.0.0":
                assert entry["n_total_clusters"] == len(comps)
            expected = []
            for comp in fitted:
                r0, c0, r1, c1 = extent(comp)
                lengths = sorted([(r1 - r0 + 1 - shrink) * zooms[0], (c1 - c0 + 1 - shrink) * zooms[1]])
                expected.append((lengths[1], lengths[0]))
            got = []
            for ellipse, points in zip(entry["slice_profile"], marks["ellipses"]):
                values = {m["metric_key"]: m["metric_value"] for m in ellipse}
                assert all(m["metric_unit"] == "mm" and m["metric_type"] == "distance" for m in ellipse)
                got.append((values["L-1-2"], values["L-3-4"]))
                for key, (p, q) in {"L-1-2": ("P1", "P2"), "L-3-4": ("P3", "P4")}.items():
                    length = float(np.linalg.norm((np.asarray(points[q]) - np.asarray(points[p])) * zooms))
                    assert length == pytest.approx(values[key], abs=1e-4)
                    assert points[p][2] == points[q][2] == entry["slice_idx"]
            np.testing.assert_allclose(sorted(got), sorted(expected), atol=1e-4)


def physical(points: list[list[int]], zooms: np.ndarray) -> np.ndarray:
    return (np.asarray(points[1], dtype=np.float64) - np.asarray(points[0], dtype=np.float64)) * zooms


@pytest.mark.parametrize("dataset", ["Ceph-Biometrics-400", "FeTA24"])
def test_ad_values_equal_landmark_geometry(phantom: dict[str, Any], dataset: str) -> None:
    root = phantom["root"]
    folder = root / "Datasets" / dataset
    plan = read_plan(root, dataset, "biometry")
    task = plan["tasks"][0]
    for _, _, case in all_cases(plan):
        zooms = np.asarray(nib.load(folder / case["image_file"]).header.get_zooms(), dtype=np.float64)
        landmarks = read_json_gz(folder / case["landmark_file"])
        assert set(landmarks) == set(task["landmarks_map"])
        for plane in range(3):
            wanted = [m["metric_key"] for m in task["biometrics_map"] if m["slice_dim"] == plane]
            entries = case[PROFILE_KEYS[plane]]
            assert [e["slice_profile"][0]["metric_key"] for e in entries] == wanted
            for entry in entries:
                (metric,) = entry["slice_profile"]
                assert metric["slice_dim"] == plane
                if metric["metric_type"] == "distance":
                    line = task["lines_map"][metric["metric_key"]]
                    points = [landmarks[k] for k in line["element_keys"]]
                    value = float(np.linalg.norm(physical(points, zooms)))
                    assert metric["metric_unit"] == "mm" and metric["metric_map_name"] == "lines_map"
                else:
                    angle = task["angles_map"][metric["metric_key"]]
                    lines = [task["lines_map"][k]["element_keys"] for k in angle["element_keys"]]
                    segments = [[landmarks[a], landmarks[b]] for a, b in lines]
                    points = [p for seg in segments for p in seg]
                    va, vb = (physical(seg, zooms) for seg in segments)
                    cosine = abs(va @ vb) / (np.linalg.norm(va) * np.linalg.norm(vb))
                    value = math.degrees(math.acos(min(1.0, cosine)))
                    assert metric["metric_unit"] == "degree" and metric["metric_map_name"] == "angles_map"
                assert metric["metric_value"] == pytest.approx(value, abs=1e-5)
                assert all(p[plane] == entry["slice_idx"] for p in points)


def test_ad_task_shapes(phantom: dict[str, Any]) -> None:
    root = phantom["root"]
    ceph = read_plan(root, "Ceph-Biometrics-400", "biometry")["tasks"][0]
    assert ceph["image_modality"] == "X Ray"
    assert ceph["image_description"] == "cephalogram (head and neck X-ray)"
    assert {m["metric_type"] for m in ceph["biometrics_map"]} == {"distance", "angle"}
    assert {m["slice_dim"] for m in ceph["biometrics_map"]} == {0}
    names = [
        ceph["lines_map"][m["metric_key"]]["name"]
        for m in ceph["biometrics_map"]
        if m["metric_type"] == "distance"
    ]
    assert any(names) and not all(names)
    angle_names = [
        ceph["angles_map"][m["metric_key"]]["name"]
        for m in ceph["biometrics_map"]
        if m["metric_type"] == "angle"
    ]
    assert any(angle_names) and not all(angle_names)
    for case in ceph["test_cases"] + ceph["train_cases"]:
        assert [e["slice_idx"] for e in case["slice_profiles_x"]] == [0] * len(ceph["biometrics_map"])
    feta = read_plan(root, "FeTA24", "biometry")["tasks"][0]
    assert sorted(m["slice_dim"] for m in feta["biometrics_map"]) == [0, 0, 1, 2, 2]
    assert {m["metric_type"] for m in feta["biometrics_map"]} == {"distance"}


def test_one_near_zero_angle_in_a_test_case(phantom: dict[str, Any]) -> None:
    root = phantom["root"]
    task = read_plan(root, "Ceph-Biometrics-400", "biometry")["tasks"][0]
    small = [
        (split, case["case_ID"], m["metric_key"], m["metric_value"])
        for split, _, case in all_cases({"tasks": [task]})
        for e in case["slice_profiles_x"]
        for m in e["slice_profile"]
        if m["metric_type"] == "angle" and m["metric_value"] < 0.1
    ]
    assert len(small) == 1 and small[0][0] == "test_cases"
    (planted,) = phantom["manifest"]["planted"]["near_zero_angles"]
    assert (planted["case_ID"], planted["metric_key"], planted["metric_value"]) == small[0][1:]


# ---------------------------------------------------------------------------------------------
# Manifest counts and planted cases
# ---------------------------------------------------------------------------------------------


def test_manifest_counts_match_independent_counter(phantom: dict[str, Any]) -> None:
    root, manifest = phantom["root"], phantom["manifest"]
    expected_configs = {
        "KiTS23_BoxSize_Task01_Axial_Test",
        "OAIZIB-CM_BoxSize_Task01_Axial_Test",
        "KiTS23_TumorLesionSize_Task01_Axial_Test",
        "Ceph-Biometrics-400_BiometricsFromLandmarks_Distance_Task01_Sagittal_Test",
        "Ceph-Biometrics-400_BiometricsFromLandmarks_Angle_Task01_Sagittal_Test",
        "FeTA24_BiometricsFromLandmarks_Task01_Sagittal_Test",
        "FeTA24_BiometricsFromLandmarks_Task01_Coronal_Test",
        "FeTA24_BiometricsFromLandmarks_Task01_Axial_Test",
    }
    assert set(manifest["configs"]) == expected_configs
    for key, kwargs in (
        ("configs", {}),
        ("configs_unfiltered", {"filtered": False}),
        ("configs_latest", {"ceiling": "latest"}),
    ):
        for config, counts in manifest[key].items():
            assert count_rows(root, config, **kwargs) == counts["test"], (key, config)
            train = config.removesuffix("_Test") + "_Train"
            assert count_rows(root, train, **kwargs) == counts["train"], (key, train)
            assert counts["test"] >= 2 and counts["train"] >= 1
    tl = "KiTS23_TumorLesionSize_Task01_Axial_Test"
    assert manifest["configs_latest"][tl]["test"] < manifest["configs"][tl]["test"]


def test_every_detection_region_has_50_test_rows(phantom: dict[str, Any]) -> None:
    root, regions = phantom["root"], phantom["manifest"]["regions"]
    assert set(regions) == {"Kidney @ CT (A)", "Kidney Tumor/Lesion @ CT (A)", "Knee @ MR (A)"}
    by_label: dict[tuple[str, int], int] = {}
    for dataset in ("KiTS23", "OAIZIB-CM"):
        for case in read_plan(root, dataset, "detection")["tasks"][0]["test_cases"]:
            for entry in case["slice_profiles_z"]:
                for item in entry["slice_profile"]:
                    boxes = item["bboxes"]
                    if len(boxes) == 1 and min(boxes[0]["dimensions"]) >= 10:
                        key = (dataset, item["label"])
                        by_label[key] = by_label.get(key, 0) + 1
    assert regions["Kidney @ CT (A)"] == by_label[("KiTS23", 1)]
    assert regions["Kidney Tumor/Lesion @ CT (A)"] == by_label[("KiTS23", 2)]
    assert regions["Knee @ MR (A)"] == by_label[("OAIZIB-CM", 1)] + by_label[("OAIZIB-CM", 2)]
    assert min(regions.values()) >= 50


def find_entry(
    root: Path, config: str, case_id: str, slice_idx: int, ceiling: str = "1.0.0"
) -> dict[str, Any]:
    dataset, annotation = config.split("_")[:2]
    plan = read_plan(root, dataset, "detection" if annotation == "BoxSize" else "biometry", ceiling)
    case = next(c for _, _, c in all_cases(plan) if c["case_ID"] == case_id)
    return next(e for e in case["slice_profiles_z"] if e["slice_idx"] == slice_idx)


def test_planted_rows_are_dropped(phantom: dict[str, Any]) -> None:
    root, planted = phantom["root"], phantom["manifest"]["planted"]
    reasons = set()
    for row in planted["dropped_rows"]:
        entry = find_entry(root, row["config"], row["case_ID"], row["slice_idx"])
        if "BoxSize" in row["config"]:
            (item,) = [i for i in entry["slice_profile"] if i["label"] == row["label"]]
            boxes = item["bboxes"]
            assert len(boxes) != 1 or min(boxes[0]["dimensions"]) < 10
            reasons.add("two boxes" if len(boxes) > 1 else "small box")
        else:
            assert len(entry["slice_profile"]) > 1
            reasons.add("two ellipses")
    assert reasons == {"two boxes", "small box", "two ellipses"}
    for row in planted["dropped_rows_latest"]:
        entry = find_entry(root, row["config"], row["case_ID"], row["slice_idx"], ceiling="latest")
        assert entry["n_total_clusters"] > 1


def test_multi_cluster_file_names_one_kept_tl_test_slice(phantom: dict[str, Any]) -> None:
    root = phantom["root"]
    folder = root / "Datasets/KiTS23"
    listed = json.loads((folder / "multi_cluster_samples_v1.0.0_to_v1.1.0.json").read_text())
    assert len(listed) == 1
    (item,) = listed
    assert set(item) == {"image_file", "slice_dim", "slice_idx", "task_ID"}
    assert item["slice_dim"] == "z" and item["task_ID"] == "01"
    old = read_plan(root, "KiTS23", "biometry")["tasks"][0]
    case = next(c for c in old["test_cases"] if c["image_file"] == item["image_file"])
    entry = next(e for e in case["slice_profiles_z"] if e["slice_idx"] == item["slice_idx"])
    assert len(entry["slice_profile"]) == 1
    new_entry = find_entry(
        root, "KiTS23_TumorLesionSize_Task01_Axial_Test", case["case_ID"], item["slice_idx"], "latest"
    )
    assert new_entry["n_total_clusters"] == 2
    (planted,) = phantom["manifest"]["planted"]["multi_cluster"]
    assert (planted["image_file"], planted["slice_idx"]) == (item["image_file"], item["slice_idx"])


def test_later_tl_plan_has_different_values(phantom: dict[str, Any]) -> None:
    root = phantom["root"]
    values = {}
    for ceiling in ("1.0.0", "latest"):
        case = read_plan(root, "KiTS23", "biometry", ceiling)["tasks"][0]["test_cases"][0]
        values[ceiling] = [
            m["metric_value"] for e in case["slice_profiles_z"] for ell in e["slice_profile"] for m in ell
        ]
    assert len(values["1.0.0"]) == len(values["latest"])
    assert all(a > b for a, b in zip(values["1.0.0"], values["latest"]))


# ---------------------------------------------------------------------------------------------
# ensure_demo_root
# ---------------------------------------------------------------------------------------------


def test_ensure_demo_root_uses_demo_dir_and_does_not_regenerate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "mydemo"
    monkeypatch.setenv("MEDVISION_DEMO_DIR", str(target))
    monkeypatch.setenv("MEDVISION_CACHE_DIR", str(tmp_path / "cache"))
    root = demo.ensure_demo_root()
    assert root == target
    manifest = root / demo.MANIFEST_NAME
    assert manifest.is_file() and (root / "Datasets/KiTS23").is_dir()
    before = manifest.stat().st_mtime_ns
    plan_before = (root / "Datasets/FeTA24/benchmark_plan_biometry_v1.0.0.json.gz").stat().st_mtime_ns
    assert demo.ensure_demo_root() == target
    assert manifest.stat().st_mtime_ns == before
    assert (root / "Datasets/FeTA24/benchmark_plan_biometry_v1.0.0.json.gz").stat().st_mtime_ns == plan_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mydemo"]


def test_ensure_demo_root_uses_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDVISION_DEMO_DIR", raising=False)
    monkeypatch.setenv("MEDVISION_CACHE_DIR", str(tmp_path / "cache"))
    root = demo.ensure_demo_root()
    assert root == tmp_path / "cache" / "demo" / demo.DEMO_VERSION
    assert (root / demo.MANIFEST_NAME).is_file()
    assert sorted(p.name for p in root.parent.iterdir()) == [demo.DEMO_VERSION]


def test_ensure_demo_root_default_cache_is_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDVISION_DEMO_DIR", raising=False)
    monkeypatch.delenv("MEDVISION_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert demo.demo_root_path() == tmp_path / ".cache" / "medvision_eval" / "demo" / demo.DEMO_VERSION


def test_ensure_demo_root_keeps_a_finished_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "done"
    target.mkdir()
    (target / demo.MANIFEST_NAME).write_text(json.dumps({"demo_version": demo.DEMO_VERSION}))
    monkeypatch.setenv("MEDVISION_DEMO_DIR", str(target))
    assert demo.ensure_demo_root() == target
    assert not (target / "Datasets").exists()


def test_ensure_demo_root_refuses_a_foreign_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    monkeypatch.setenv("MEDVISION_DEMO_DIR", str(target))
    with pytest.raises(FileExistsError, match="holds no demo_manifest.json"):
        demo.ensure_demo_root()
    assert (target / "notes.txt").read_text() == "mine"


def test_ensure_demo_root_uses_the_race_winner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "raced"
    monkeypatch.setenv("MEDVISION_DEMO_DIR", str(target))
    real_generate = demo.generate_phantom

    def generate_while_another_process_wins(out_dir: str | Path, seed: int = 0) -> Path:
        result = real_generate(out_dir, seed)
        target.mkdir()
        (target / demo.MANIFEST_NAME).write_text(json.dumps({"demo_version": demo.DEMO_VERSION, "winner": 1}))
        return result

    monkeypatch.setattr(demo, "generate_phantom", generate_while_another_process_wins)
    assert demo.ensure_demo_root() == target
    assert json.loads((target / demo.MANIFEST_NAME).read_text())["winner"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raced"]
    assert os.listdir(target) == [demo.MANIFEST_NAME]
