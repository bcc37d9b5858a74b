"""doctor checks every file the plans reference (Test and Train cases, images, masks, landmarks), cheaply by
default and by decoding every volume with --full; non-finite ground truth is named and refused."""

from __future__ import annotations

import gzip
import json
import math
import re
import shutil
from pathlib import Path

import pytest

from medvision_tasks.cli import main
from medvision_tasks.errors import PlanError
from medvision_tasks.integrity import file_problem
from medvision_tasks.row_cache import rows_for_config

KITS_TL = "medvision_tl_kits23_task01_axial"
KITS_DET = "medvision_detection_kits23_task01_axial"
DET_PLAN = "benchmark_plan_detection_v1.0.0.json.gz"
TL_PLAN = "benchmark_plan_biometry_v1.0.0.json.gz"


def doctor(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["doctor", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def kits(fixture_root, tmp_path) -> Path:
    ds = tmp_path / "Datasets" / "KiTS23"
    shutil.copytree(fixture_root / "Datasets" / "KiTS23", ds)
    return ds


def _plan(ds: Path, name: str) -> dict:
    return json.loads(gzip.decompress((ds / name).read_bytes()))


def _write_plan(ds: Path, name: str, plan: dict) -> None:
    (ds / name).write_bytes(gzip.compress(json.dumps(plan).encode()))  # json writes NaN/Infinity as given


def _train_only_image(ds: Path) -> Path:
    task = _plan(ds, DET_PLAN)["tasks"][0]
    test = {Path(c["image_file"]).name for c in task["test_cases"]}
    name = next(Path(c["image_file"]).name for c in task["train_cases"] if Path(c["image_file"]).name not in test)
    return ds / "Images" / name


def test_intact_root_passes(kits, capsys):
    code, out, _ = doctor(capsys, "--root", str(kits.parents[1]), "--tasks", KITS_DET, KITS_TL)
    assert code == 0, out


def test_deleted_train_only_image_fails_naming_it(kits, capsys):
    image = _train_only_image(kits)
    image.unlink()
    code, out, _ = doctor(capsys, "--root", str(kits.parents[1]), "--tasks", KITS_DET)
    assert code == 1, out
    assert re.search(rf"missing: {re.escape(str(image))} \(mask, Train case", out)
    assert "referenced file(s) outside the evaluated rows" in out and str(image) in out
    assert "re-download" in out


def test_truncated_mask_fails_naming_it(kits, capsys):
    mask = kits / "Masks" / "kits23_000.nii.gz"
    data = mask.read_bytes()
    mask.write_bytes(data[: len(data) - 40])  # loses the gzip trailer and the last block
    code, out, _ = doctor(capsys, "--root", str(kits.parents[1]), "--tasks", KITS_DET)
    assert code == 1, out
    assert re.search(rf"truncated or corrupt: .*: {re.escape(str(mask))}", out), out


def test_full_decodes_every_referenced_volume(kits, capsys):
    root = kits.parents[1]
    volumes = set()
    for name in (DET_PLAN, TL_PLAN):
        for split in ("test_cases", "train_cases"):
            for case in _plan(kits, name)["tasks"][0][split]:
                volumes |= {Path(case[k]).name + k for k in ("image_file", "mask_file") if case.get(k)}
    code, out, err = doctor(capsys, "--root", str(root), "--tasks", KITS_DET, KITS_TL, "--full")
    assert code == 0, out
    match = re.search(r"Full decode: (\d+) referenced volume\(s\), [\d.]+ MB, in [\d.]+ s \(([\d.]+) volumes/s", out)
    assert match and int(match.group(1)) == len(volumes), out
    assert "decoding [" in err and f"{len(volumes)}/{len(volumes)}" in err
    assert "Sampled volumes" not in out


def test_full_catches_a_volume_the_cheap_checks_pass(kits, capsys):
    """Same size, valid gzip, NIfTI header intact, but a corrupted deflate body: only a decode notices."""
    import nibabel as nib
    import numpy as np

    mask = kits / "Masks" / "kits23_002.nii.gz"
    img = nib.load(mask)
    header = img.header.copy()
    header.set_data_shape((40, 40, 40))
    noise = np.random.default_rng(0).integers(0, 4, (40, 40, 40), dtype=np.uint8)
    nib.save(nib.Nifti1Image(noise, img.affine, header), mask)
    code, out, _ = doctor(capsys, "--root", str(kits.parents[1]), "--tasks", KITS_DET, "--full")
    assert code == 0, out  # a valid (if different) volume: decodes fine
    raw = bytearray(mask.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    mask.write_bytes(bytes(raw))
    assert file_problem(mask) is None  # the cheap checks cannot see it
    code, out, _ = doctor(capsys, "--root", str(kits.parents[1]), "--tasks", KITS_DET, "--full")
    assert code == 1 and str(mask) in out, out


@pytest.mark.parametrize(
    ("plan_name", "field", "edit"),
    [
        (
            DET_PLAN,
            "image_file_info.voxel_size",
            lambda t: t["test_cases"][0]["image_file_info"].update(voxel_size=[math.nan, 1.0, 1.0]),
        ),
        (TL_PLAN, "metric_value", "tl"),
    ],
)
def test_non_finite_ground_truth_is_named_and_refused(kits, capsys, plan_name, field, edit):
    plan = _plan(kits, plan_name)
    task = plan["tasks"][0]
    if edit == "tl":
        for entry in task["test_cases"][0]["slice_profiles_z"]:
            for ellipse in entry["slice_profile"]:
                for metric in ellipse:
                    metric["metric_value"] = math.inf
    else:
        edit(task)
    _write_plan(kits, plan_name, plan)
    task_name = KITS_DET if plan_name == DET_PLAN else KITS_TL
    code, out, _ = doctor(capsys, "--root", str(kits.parents[1]), "--tasks", task_name)
    assert code == 1, out
    assert re.search(rf"FAIL  {task_name} .*{re.escape(field)} .* is not finite", out), out
    config = "KiTS23_BoxSize_Task01_Axial_Test" if plan_name == DET_PLAN else "KiTS23_TumorLesionSize_Task01_Axial_Test"
    with pytest.raises(PlanError, match=rf"{re.escape(field)} .* is not finite.*re-download the plan"):
        rows_for_config(kits.parents[1], config)


def test_arrow_rows_with_non_finite_ground_truth_are_refused(fixture_root, tmp_path):
    import datasets

    from medvision_tasks.arrow_rows import iter_arrow_rows
    from medvision_tasks.data import OFFICIAL_FIELDS

    config = "KiTS23_TumorLesionSize_Task01_Axial_Test"
    rows = [{k: r[k] for k in OFFICIAL_FIELDS if k in r} for r in rows_for_config(fixture_root, config)]
    rows[1]["biometric_profile"]["metric_value_major_axis"] = [math.nan]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / config))
    with pytest.raises(PlanError, match=r"row 1: metric_value \[nan.*is not finite"):
        list(iter_arrow_rows(fixture_root, config, tmp_path / config))
