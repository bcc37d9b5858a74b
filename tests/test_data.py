"""Plan reader (docs/reference.md §1.2-§1.5) on the phantom root: counts, order, filters, ceiling, float16, bad
input."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medvision_tasks.data import RowStats, find_plan, parse_config_name
from medvision_tasks.errors import PlanError
from medvision_tasks.row_cache import rows_for_config

KITS_DET = "KiTS23_BoxSize_Task01_Axial_Test"
KITS_TL = "KiTS23_TumorLesionSize_Task01_Axial_Test"
CEPH_D = "Ceph-Biometrics-400_BiometricsFromLandmarks_Distance_Task01_Sagittal_Test"
CEPH_A = "Ceph-Biometrics-400_BiometricsFromLandmarks_Angle_Task01_Sagittal_Test"


def test_config_name_parsing():
    cfg = parse_config_name(CEPH_D)
    assert (cfg.dataset, cfg.family, cfg.metric_token, cfg.task_id, cfg.slice_dim) == (
        "Ceph-Biometrics-400",
        "ad",
        "Distance",
        "01",
        0,
    )
    assert cfg.task_type == "Biometrics-From-Landmarks-Distance"
    assert parse_config_name(KITS_DET).official_task == "KiTS23_BoxCoordinate_Task01_Axial"
    assert parse_config_name("KiTS23_BoxCoordinate_Task01_Axial_Test").family == "detection"
    assert parse_config_name("AbdomenAtlas1.0Mini_BoxSize_Task01_Axial_Test").dataset == "AbdomenAtlas1.0Mini"
    with pytest.raises(PlanError, match="unknown annotation type 'MaskSize'"):
        parse_config_name("KiTS23_MaskSize_Task01_Axial_Test")
    with pytest.raises(PlanError, match="expected"):
        parse_config_name("KiTS23_BoxSize_Task1_Axial_Test")


@pytest.mark.parametrize("split", ["test", "train"])
def test_counts_equal_manifest(demo_root, demo_manifest, split):
    for config, counts in demo_manifest["configs"].items():
        cfg = parse_config_name(config)
        name = cfg.with_split(split.capitalize()).config
        assert len(rows_for_config(demo_root, name)) == counts[split], name


def test_unfiltered_and_latest_counts(demo_root, demo_manifest):
    for config, counts in demo_manifest["configs_unfiltered"].items():
        assert len(rows_for_config(demo_root, config, filtering=False)) == counts["test"], config
    for config, counts in demo_manifest["configs_latest"].items():
        assert len(rows_for_config(demo_root, config, planner_version="latest")) == counts["test"], config


def _case_key(config: str, row: dict) -> tuple[str, str, int, int]:
    case = Path(row["mv_image_file_rel"]).name.split(".")[0]
    return (config, case, row["slice_idx"], row["label"])


def test_filters_drop_exactly_the_planted_rows(demo_root, demo_manifest):
    planted = demo_manifest["planted"]["dropped_rows"]
    for config in {d["config"] for d in planted}:
        kept = {_case_key(config, r) for r in rows_for_config(demo_root, config)}
        every = [_case_key(config, r) for r in rows_for_config(demo_root, config, filtering=False)]
        dropped = [k for k in every if k not in kept]
        expected = [d for d in planted if d["config"] == config]
        assert len(dropped) == len(expected), config
        for d in expected:  # image names start with the case ID (e.g. oaizib_001_0000.nii.gz)
            assert any(k[1].startswith(d["case_ID"]) and k[2:] == (d["slice_idx"], d["label"]) for k in dropped), d
    stats = RowStats()
    rows_for_config(demo_root, KITS_DET, stats=stats)
    assert stats.dropped_multi_box + stats.dropped_small_box == stats.flattened - stats.kept
    assert (stats.dropped_multi_box, stats.dropped_small_box) == (3, 1)


def test_rows_order_fields_and_mv_row(demo_root):
    rows = rows_for_config(demo_root, KITS_DET)
    assert [r["mv_row"] for r in rows] == list(range(len(rows)))
    per_case: dict[str, list[tuple[int, int]]] = {}
    for r in rows:
        per_case.setdefault(r["mv_image_file_rel"], []).append((r["slice_idx"], r["label"]))
    for keys in per_case.values():
        assert keys == sorted(keys)  # ascending slice, then ascending label within a slice
    first = rows[0]
    assert first["taskType"] == "Box-Size" and first["slice_dim"] == 2
    assert set(first["bounding_boxes"]) == {"min_coords", "max_coords", "center_coords", "dimensions", "sizes"}
    assert first["mv_label_name"] in ("kidney", "kidney tumor")
    assert first["mv_region_modality"] == "CT" and first["mv_region_from_detection_plan"] is False
    assert Path(first["image_file"]).is_absolute() and Path(first["image_file"]).is_file()
    oai = rows_for_config(demo_root, "OAIZIB-CM_BoxSize_Task01_Axial_Test")[0]
    assert oai["mv_region_from_detection_plan"] is True  # no segmentation plan: fallback recorded


def test_ad_order_follows_biometrics_map(demo_root):
    plan = json.loads(
        gzip.open(demo_root / "Datasets/Ceph-Biometrics-400/benchmark_plan_biometry_v1.0.0.json.gz").read()
    )
    task = plan["tasks"][0]
    order = [m["metric_key"] for m in task["biometrics_map"] if m["metric_type"] == "distance"]
    rows = rows_for_config(demo_root, CEPH_D)
    first_case = [r for r in rows if r["mv_image_file_rel"] == rows[0]["mv_image_file_rel"]]
    assert [r["biometric_profile"]["metric_key"] for r in first_case] == order
    assert all(r["biometric_profile"]["metric_type"] == "distance" for r in rows)
    assert all(r["biometric_profile"]["metric_type"] == "angle" for r in rows_for_config(demo_root, CEPH_A))
    assert rows[0]["mv_ad_points"] and len(rows[0]["mv_ad_points"]) == 2
    angle = rows_for_config(demo_root, CEPH_A)[0]
    assert len(angle["mv_ad_lines"]) == 2 and all(len(line) == 2 for line in angle["mv_ad_lines"])


def test_version_ceiling_picks_1_0_0_over_1_1_0(demo_root):
    folder = demo_root / "Datasets/KiTS23"
    assert find_plan(folder, "biometry", "1.0.0")[1] == "1.0.0"
    assert find_plan(folder, "biometry", "latest")[1] == "1.1.0"
    assert find_plan(folder, "biometry", "1.0.5")[1] == "1.0.0"
    v1 = rows_for_config(demo_root, KITS_TL)
    latest = rows_for_config(demo_root, KITS_TL, planner_version="latest")
    assert v1[0]["mv_plan_version"] == "1.0.0" and latest[0]["mv_plan_version"] == "1.1.0"
    assert (
        v1[0]["biometric_profile"]["metric_value_major_axis"]
        != latest[0]["biometric_profile"]["metric_value_major_axis"]
    )
    with pytest.raises(
        PlanError, match=r"no benchmark_plan_biometry_v\*\.json\.gz <= 0\.9\.0 \(found: 1\.0\.0, 1\.1\.0\)"
    ):
        find_plan(folder, "biometry", "0.9.0")


def test_float16_semantics(demo_root):
    for config in (KITS_TL, CEPH_D):
        for r in rows_for_config(demo_root, config):
            bio = r["biometric_profile"]
            values = (
                bio["metric_value_major_axis"] + bio["metric_value_minor_axis"]
                if "metric_value_major_axis" in bio
                else [bio["metric_value"]]
            )
            for v in values + r["pixel_size"] + r["voxel_size"]:
                assert v == float(np.float16(v))


def test_multicluster_listing_and_cap(demo_root, demo_manifest):
    listed = demo_manifest["planted"]["multi_cluster"][0]
    rows = rows_for_config(demo_root, KITS_TL)
    flagged = [r for r in rows if r["mv_multicluster_listed"]]
    assert [(r["mv_image_file_rel"], r["slice_idx"]) for r in flagged] == [(listed["image_file"], listed["slice_idx"])]
    capped = rows_for_config(demo_root, KITS_DET, cap=7)
    assert [r["mv_row"] for r in capped] == list(range(7))
    assert [r["slice_idx"] for r in capped] == [r["slice_idx"] for r in rows_for_config(demo_root, KITS_DET)[:7]]


# ---------------------------------------------------------------------------------------------- bad input
def test_missing_root_and_dataset(tmp_path):
    with pytest.raises(PlanError, match=r"does not exist; set MEDVISION_DATA_DIR"):
        rows_for_config(tmp_path / "nope", KITS_DET)
    with pytest.raises(PlanError, match=r"has no Datasets/ folder"):
        rows_for_config(tmp_path, KITS_DET)
    (tmp_path / "Datasets").mkdir()
    with pytest.raises(PlanError, match=r"Datasets/KiTS23 is missing; download KiTS23"):
        rows_for_config(tmp_path, KITS_DET)
    (tmp_path / "Datasets" / "KiTS23").mkdir()
    with pytest.raises(PlanError, match=r"no benchmark_plan_detection_v\*\.json\.gz <= 1\.0\.0 \(found: none\)"):
        rows_for_config(tmp_path, KITS_DET)


def _copy_dataset(demo_root: Path, tmp_path: Path, name: str) -> Path:
    dst = tmp_path / "Datasets" / name
    shutil.copytree(demo_root / "Datasets" / name, dst)
    return dst


def _rewrite_plan(path: Path, mutate) -> None:
    plan = json.loads(gzip.open(path).read())
    mutate(plan)
    path.write_bytes(gzip.compress(json.dumps(plan).encode()))


def test_corrupt_and_malformed_plans(demo_root, tmp_path):
    ds = _copy_dataset(demo_root, tmp_path, "KiTS23")
    plan = ds / "benchmark_plan_detection_v1.0.0.json.gz"
    plan.write_bytes(b"not gzip at all")
    with pytest.raises(PlanError, match=r"benchmark_plan_detection_v1\.0\.0\.json\.gz: not a readable gzip file"):
        rows_for_config(tmp_path, KITS_DET)
    shutil.copy(demo_root / "Datasets/KiTS23/benchmark_plan_detection_v1.0.0.json.gz", plan)
    _rewrite_plan(plan, lambda p: p["tasks"][0].pop("labels_map"))
    with pytest.raises(PlanError, match=r"field tasks\[0\]\.labels_map is missing"):
        rows_for_config(tmp_path, KITS_DET)


def test_paths_escaping_the_root_are_rejected(demo_root, tmp_path):
    ds = _copy_dataset(demo_root, tmp_path, "KiTS23")
    plan = ds / "benchmark_plan_detection_v1.0.0.json.gz"

    def escape(p):
        p["tasks"][0]["test_cases"][0]["image_file"] = "../../../etc/passwd"

    _rewrite_plan(plan, escape)
    with pytest.raises(PlanError, match=r"escapes the dataset folder"):
        rows_for_config(tmp_path, KITS_DET)

    def absolute(p):
        p["tasks"][0]["test_cases"][0]["image_file"] = "/etc/passwd"

    _rewrite_plan(plan, absolute)
    with pytest.raises(PlanError, match=r"absolute path outside"):
        rows_for_config(tmp_path, KITS_DET)

    def foreign_root(p):
        rel = p["tasks"][0]["test_cases"][0]["image_file"]
        p["tasks"][0]["test_cases"][0]["image_file"] = f"/cluster/data/Datasets/KiTS23/{rel}"

    shutil.copy(demo_root / "Datasets/KiTS23/benchmark_plan_detection_v1.0.0.json.gz", plan)
    _rewrite_plan(plan, foreign_root)
    rows = rows_for_config(tmp_path, KITS_DET)  # re-rooted under the local dataset folder
    assert Path(rows[0]["image_file"]).is_relative_to(ds.resolve())


def test_symlinked_folders_are_not_escapes(demo_root, tmp_path):
    ds = _copy_dataset(demo_root, tmp_path, "KiTS23")
    other_disk = tmp_path / "other_disk" / "Images"
    shutil.move(str(ds / "Images"), other_disk)
    (ds / "Images").symlink_to(other_disk, target_is_directory=True)
    rows = rows_for_config(tmp_path, KITS_DET)
    assert rows[0]["mv_image_file_rel"].startswith("Images/") and Path(rows[0]["image_file"]).is_file()


def test_short_ceiling_means_x_y_0(demo_root):
    assert find_plan(demo_root / "Datasets/KiTS23", "biometry", "1.1")[1] == "1.1.0"
    assert find_plan(demo_root / "Datasets/KiTS23", "biometry", "1")[1] == "1.0.0"


def test_label_missing_from_segmentation_plan_is_flagged(demo_root, tmp_path):
    ds = _copy_dataset(demo_root, tmp_path, "KiTS23")
    _rewrite_plan(ds / "benchmark_plan_segmentation_v1.0.0.json.gz", lambda p: p["tasks"][0]["labels_map"].pop("2"))
    rows = rows_for_config(tmp_path, KITS_DET)
    flags = {r["label"]: r["mv_region_from_detection_plan"] for r in rows}
    assert flags == {1: False, 2: True}
    assert {r["mv_region_label"] for r in rows if r["label"] == 2} == {"kidney tumor"}
