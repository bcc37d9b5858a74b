"""`medvision-eval doctor` on the fixture root: counts, files, orientation, credentials, review, Arrow comparison."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import datasets
import nibabel as nib
import numpy as np
import pytest
from fixture_root import build_fixture_root

from medvision_tasks.cli import main
from medvision_tasks.data import OFFICIAL_FIELDS
from medvision_tasks.row_cache import rows_for_config

KITS_TL = "medvision_tl_kits23_task01_axial"
KITS_DET = "medvision_detection_kits23_task01_axial"


def doctor(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["doctor", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_full_fixture_root_can_run_every_subtask(fixture_root, capsys):
    code, out, err = doctor(capsys, "--root", str(fixture_root))
    assert code == 0, out
    assert "Summary: 43 of 43 requested subtask(s) can run." in out
    assert "scanning [" in err and "43/43" in err
    assert re.search(r"  KiTS23 +biometry 1\.0\.0\*, 1\.1\.0, 1\.4\.0; detection 1\.0\.0\*; segmentation", out)
    assert re.search(
        r"DIFF  medvision_detection_kits23_task01_axial  KiTS23_BoxSize_Task01_Axial_Test  rows 6  "
        r"expected 6590  evaluated 6",
        out,
    )
    assert re.search(
        r"AbdomenAtlas1\.0Mini_BoxSize_Task01_Axial_Test rows 6 \(accepted 891,298; v1 task list "
        r"916,437\) sha256 [0-9a-f]{64}",
        out,
    )
    assert "Sampled volumes: 38 decoded in full (2 per dataset), 0 with problems." in out
    assert "ToothFairy2 (not requested): restricted" in out
    assert "  KiTS23\t01\tbiometry\t2\tkits23 target 1 b (target)\t'abdominal CT scan'" in out
    assert "  FeTA24\t01\tbiometry\t-\t-\t''" in out


def test_missing_and_gated_datasets(tmp_path, capsys):
    root = build_fixture_root(tmp_path, datasets=("KiTS23",))
    code, out, _ = doctor(
        capsys,
        "--root",
        str(root),
        "--tasks",
        KITS_TL,
        "medvision_detection_skmtea_task01_axial",
        "medvision_ad_feta24_task01_axial",
        "medvision_tl_kits23_task01_axal",
    )
    assert code == 1
    assert (
        "FAIL unknown task or group medvision_tl_kits23_task01_axal (did you mean medvision_tl_kits23_task01_axial?)"
        in out
    )
    assert re.search(
        r"FAIL  medvision_detection_skmtea_task01_axial .*Datasets/SKM-TEA is missing.*\[SKM-TEA restricted", out
    )
    assert re.search(r"FAIL  medvision_ad_feta24_task01_axial .*\[FeTA24 needs a Synapse account", out)
    assert "AbdomenAtlas1.0Mini (not requested): gated on Hugging Face" in out
    assert "FeTA24 (needed by the requested subtasks): needs a Synapse" in out
    assert "Summary: 1 of 4 requested subtask(s) can run." in out
    assert "Missing datasets: FeTA24, SKM-TEA; download it with the official MedVision downloader" in out


def test_missing_root(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MEDVISION_DATA_DIR", raising=False)
    code, out, _ = doctor(capsys, "--tasks", KITS_TL)
    assert code == 1 and "MEDVISION_DATA_DIR is not set and no --root given" in out
    code, out, _ = doctor(capsys, "--root", str(tmp_path / "nowhere"), "--tasks", KITS_TL)
    assert code == 1 and "nowhere does not exist; point MEDVISION_DATA_DIR" in out
    code, out, _ = doctor(capsys, "--tasks", "medvision_demo")  # issue 14: the demo scope checks the phantom root
    assert code == 0 and "8 demo subtask(s): checking the phantom root they read" in out
    assert "Summary: 8 of 8 requested subtask(s) can run." in out


def test_missing_files_and_non_ras_volumes(fixture_root, tmp_path, capsys, monkeypatch):
    ds = tmp_path / "Datasets" / "KiTS23"
    shutil.copytree(fixture_root / "Datasets" / "KiTS23", ds)
    (ds / "Images" / "kits23_000.nii.gz").unlink()
    (ds / "Masks" / "kits23_002.nii.gz").unlink()  # a train mask: listed, exit 1, the subtasks can still run
    (ds / "Landmarks-Label2-v1.0.0" / "kits23_001.json.gz").write_bytes(b"{}")  # not gzip
    las = ds / "Images" / "kits23_001.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((14, 12, 11), np.int16), np.diag([-1.0, 1.0, 1.0, 1.0])), las)
    code, out, _ = doctor(capsys, "--root", str(tmp_path), "--tasks", KITS_TL, KITS_DET)
    assert code == 1
    assert "Files: 3 referenced file(s) missing or unreadable:" in out
    assert re.search(r"missing: .*Images/kits23_000\.nii\.gz\n", out)
    assert re.search(r"not a gzip file: .*Landmarks-Label2-v1\.0\.0/kits23_001\.json\.gz\n", out)
    assert re.search(r"missing: .*Masks/kits23_002\.nii\.gz \(mask, Train case", out)  # checked, not read
    assert re.search(r"kits23_001\.nii\.gz: orientation LAS is not RAS\+", out)
    assert re.search(r"FAIL  medvision_tl_kits23_task01_axial .*: 3 referenced file\(s\) missing or unreadable", out)
    assert "Summary: 0 of 2 requested subtask(s) can run." in out
    shutil.copy(fixture_root / "Datasets/KiTS23/Images/kits23_000.nii.gz", ds / "Images")
    shutil.copy(fixture_root / "Datasets/KiTS23/Masks/kits23_002.nii.gz", ds / "Masks")
    monkeypatch.setenv("MEDVISION_ALLOW_NON_RAS", "1")
    code, out, _ = doctor(capsys, "--root", str(tmp_path), "--tasks", KITS_DET)
    assert code == 0 and "orientation LAS is not RAS+ (allowed by MEDVISION_ALLOW_NON_RAS)" in out


def _save_arrow(rows: list[dict], folder: Path) -> None:
    official = [{k: r[k] for k in OFFICIAL_FIELDS if k in r} for r in rows]
    datasets.Dataset.from_list(official).save_to_disk(str(folder))


@pytest.mark.parametrize("cap", ["0", "2"])
def test_compare_arrow(fixture_root, tmp_path, capsys, monkeypatch, cap):
    monkeypatch.setenv("MEDVISION_SAMPLE_CAP", cap)  # the comparison always covers every row
    same = rows_for_config(fixture_root, "KiTS23_TumorLesionSize_Task01_Axial_Test")
    _save_arrow(same, tmp_path / "KiTS23_TumorLesionSize_Task01_Axial_Test")
    changed = rows_for_config(fixture_root, "KiTS23_BoxSize_Task01_Axial_Test")
    changed[2]["bounding_boxes"]["max_coords"][0][1] += 1
    _save_arrow(changed, tmp_path / "KiTS23_BoxSize_Task01_Axial_Test")
    code, out, _ = doctor(
        capsys,
        "--root",
        str(fixture_root),
        "--tasks",
        KITS_TL,
        KITS_DET,
        "medvision_ad_feta24_task01_axial",
        "--compare-arrow",
        str(tmp_path),
    )
    assert code == 1
    assert "same   KiTS23_TumorLesionSize_Task01_Axial_Test: 6 rows" in out
    assert "DIFFER KiTS23_BoxSize_Task01_Axial_Test: 6 rows; first difference: row 2 field bounding_boxes" in out
    assert "skip   FeTA24_BiometricsFromLandmarks_Task01_Axial_Test: no FeTA24_" in out
    assert out.rstrip().endswith(
        "Summary: 3 of 3 requested subtask(s) can run; 1 config(s) differ from the Arrow build."
    )
