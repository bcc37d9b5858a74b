"""Every benchmark config on the fixture root (tests/fixture_root.py) yields exactly the rows docs/reference.md §1.4
prescribes, in exactly that order, at v1.0.0, at `latest` and unfiltered."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixture_root import BUILDER_ROOT, CONSTANT_SLICE, EXPECTED_NAME, build_fixture_root

from medvision_tasks.catalogue import read_catalogue
from medvision_tasks.data import RowStats, find_plan, parse_config_name
from medvision_tasks.row_cache import rows_for_config

MODES = {"1.0.0": {}, "latest": {"planner_version": "latest"}, "unfiltered": {"filtering": False}}


def row_key(row: dict[str, Any]) -> list[Any]:
    """(image_rel, slice_dim, slice_idx, label or metric_key, GT) of one reader row."""
    if row["mv_family"] == "detection":
        boxes = row["bounding_boxes"]
        return [*_where(row), row["label"], [*boxes["min_coords"][0], *boxes["max_coords"][0]]]
    bio = row["biometric_profile"]
    if row["mv_family"] == "tl":
        return [*_where(row), row["label"], [bio["metric_value_major_axis"][0], bio["metric_value_minor_axis"][0]]]
    return [*_where(row), bio["metric_key"], bio["metric_value"]]


def _where(row: dict[str, Any]) -> list[Any]:
    return [row["mv_image_file_rel"], row["slice_dim"], row["slice_idx"]]


@pytest.fixture(scope="module")
def expected(fixture_root: Path) -> dict[str, dict[str, list[list[Any]]]]:
    return json.loads((fixture_root / EXPECTED_NAME).read_text())["configs"]


def test_fixture_is_byte_deterministic(tmp_path):
    a = build_fixture_root(tmp_path / "a", datasets=("KiTS23", "Ceph-Biometrics-400"))
    b = build_fixture_root(tmp_path / "b", datasets=("KiTS23", "Ceph-Biometrics-400"))
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)


def test_every_catalogue_config_has_test_and_train_rows(expected):
    configs = [e.config for e in read_catalogue() if e.set not in ("demo", "demo_spacing", "spacing")]
    assert len(configs) == 133
    for config in configs:
        train = parse_config_name(config).with_split("Train").config
        assert expected[config]["1.0.0"] and expected[train]["1.0.0"], config


@pytest.mark.parametrize("mode", sorted(MODES))
def test_rows_equal_expected_in_order(fixture_root, expected, mode):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*empty T/L profile dropped")
        for config, modes in expected.items():
            rows = rows_for_config(fixture_root, config, **MODES[mode])
            assert [row_key(r) for r in rows] == modes[mode], f"{config} ({mode})"
            assert [r["mv_row"] for r in rows] == list(range(len(rows)))


def test_planted_branches(fixture_root, expected):
    det = "BraTS24_BoxSize_Task06_Sagittal_Test"
    stats = RowStats()
    rows = rows_for_config(fixture_root, det, stats=stats)
    # per case: 5 flattened items, 1 multi-box, 1 small box dropped
    assert (stats.flattened, stats.dropped_multi_box, stats.dropped_small_box, stats.kept) == (10, 2, 2, 6)
    assert rows[0]["mv_image_file_rel"].startswith("BraTS24-MEN-RT/Images-t2f/")  # sub-dataset + sequence folder
    assert {r["label"] for r in rows} == {1, 2} and all(type(r["label"]) is int for r in rows)
    # absolute builder paths of test case 1 are re-rooted under the local dataset folder
    second = [r for r in rows if r["mv_image_file_rel"].endswith("_001.nii.gz")]
    ds_dir = (fixture_root / "Datasets" / "BraTS24").resolve()
    assert second and all(
        Path(r["image_file"]).is_file() and Path(r["image_file"]).is_relative_to(ds_dir) for r in second
    )
    assert not any(BUILDER_ROOT in r["mask_file"] for r in second)
    # anisotropic spacing on every plane, float16-rounded
    sizes = [
        tuple(rows_for_config(fixture_root, f"KiTS23_BoxSize_Task01_{p}_Test")[0]["pixel_size"])
        for p in ("Sagittal", "Coronal", "Axial")
    ]
    assert sizes == [(0.89990234375, 2.5), (0.78076171875, 2.5), (0.78076171875, 0.89990234375)]
    # the constant axial slice is a kept row
    axial = rows_for_config(fixture_root, "KiTS23_BoxSize_Task01_Axial_Test")
    assert any(r["slice_idx"] == CONSTANT_SLICE and r["mv_image_file_rel"].endswith("_000.nii.gz") for r in axial)
    # region labels: segmentation plan, or the detection plan with a recorded flag
    assert axial[0]["mv_region_from_detection_plan"] is False
    assert rows_for_config(fixture_root, "CAMUS_BoxSize_Task01_Axial_Test")[0]["mv_region_from_detection_plan"]


def test_version_ceiling_and_multicluster(fixture_root):
    folder = fixture_root / "Datasets" / "KiTS23"
    assert [find_plan(folder, "biometry", v)[1] for v in ("1.0.0", "1.1.5", "latest")] == ["1.0.0", "1.1.0", "1.4.0"]
    tl = "KiTS23_TumorLesionSize_Task01_Coronal_Test"
    v1 = rows_for_config(fixture_root, tl)
    listed = [
        (r["slice_idx"], r["mv_multicluster_listed"]) for r in v1 if r["mv_image_file_rel"].endswith("_000.nii.gz")
    ]
    assert listed == [(1, False), (6, True), (7, False)]  # slice 6: one ellipse, 2 clusters at v1.1.0
    assert {r["mv_plan_version"] for r in rows_for_config(fixture_root, tl, planner_version="latest")} == {"1.4.0"}
    with pytest.warns(UserWarning, match=r"slice 9: empty T/L profile dropped"):
        rows_for_config(fixture_root, "HNTSMRG24_TumorLesionSize_Task01_Axial_Test")


def test_ad_split_order_and_float16(fixture_root):
    dist = rows_for_config(fixture_root, "Ceph-Biometrics-400_BiometricsFromLandmarks_Distance_Task01_Sagittal_Test")
    angle = rows_for_config(fixture_root, "Ceph-Biometrics-400_BiometricsFromLandmarks_Angle_Task01_Sagittal_Test")
    assert [r["biometric_profile"]["metric_key"] for r in dist[:3]] == ["L-1-2", "L-2-3", "L-1-3"]
    assert dist[0]["biometric_profile"]["metric_value"] == 63.28125  # 63.27 stored as float16
    assert dist[0]["image_size_2d"] == [14, 16] and dist[0]["pixel_size"] == [float(np.float16(0.1))] * 2
    assert [r["biometric_profile"]["metric_type"] for r in angle] == ["angle"] * 4
    assert angle[1]["biometric_profile"]["metric_value"] < 0.1 and len(angle[0]["mv_ad_lines"]) == 2
    axial = rows_for_config(fixture_root, "FeTA24_BiometricsFromLandmarks_Task01_Axial_Test")
    assert [r["slice_idx"] for r in axial[:2]] == [6, 3]  # biometrics_map order, never sorted
    sag = rows_for_config(fixture_root, "FeTA24_BiometricsFromLandmarks_Task01_Sagittal_Test")
    assert sag[0]["slice_idx"] == sag[1]["slice_idx"] and sag[0]["mv_image_file_rel"].startswith("Images-reoriented/")
    assert sag[0]["mv_modality"] == "" and sag[0]["mv_image_description"] == ""
