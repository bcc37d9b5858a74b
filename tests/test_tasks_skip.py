"""MEDVISION_SKIP_MISSING=1: subtasks whose dataset is absent are skipped (not an error) and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_utils import describe, read_records, results_json, run_medvision_eval, samples_files
from fixture_root import build_fixture_root

from medvision_tasks import preflight as preflight_module
from medvision_tasks.errors import PlanError
from medvision_tasks.preflight import SKIPPED_FILE, preflight, record_skipped

PRESENT = ("KiTS23", "Ceph-Biometrics-400")
KEPT = {
    "medvision_tl_kits23_task01_axial",
    "medvision_ad_cephbiometrics400_distance_task01_sagittal",
    "medvision_ad_cephbiometrics400_angle_task01_sagittal",
}


@pytest.fixture(scope="module")
def partial_root(tmp_path_factory) -> Path:
    """A data root holding only KiTS23 and Ceph-Biometrics-400."""
    return build_fixture_root(tmp_path_factory.mktemp("partial"), datasets=PRESENT)


@pytest.fixture(autouse=True)
def _fresh_skips():
    preflight_module._SKIPPED.clear()
    yield
    preflight_module._SKIPPED.clear()


def test_without_the_switch_missing_datasets_fail_and_name_the_switch(partial_root, monkeypatch):
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(partial_root))
    with pytest.raises(PlanError, match=r"(?s)BraTS24: dataset folder .*MEDVISION_SKIP_MISSING=1 to skip them"):
        preflight(["medvision_tl"])


def test_switch_skips_and_records(partial_root, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(partial_root))
    monkeypatch.setenv("MEDVISION_SKIP_MISSING", "1")
    skipped = preflight(["medvision_tl", "medvision_ad"])
    assert len(skipped) == 12 and not KEPT & set(skipped)
    assert "medvision_ad_feta24_task01_axial" in skipped and "medvision_tl_brats24_task04_axial" in skipped
    assert "skipping 12 subtask(s)" in caplog.text
    record = record_skipped(tmp_path / "out")
    written = json.loads((tmp_path / "out" / SKIPPED_FILE).read_text())
    assert written == record and record["switch"] == "MEDVISION_SKIP_MISSING=1"
    assert [item["task"] for item in record["skipped"]] == sorted(skipped)
    assert all("FeTA24" in item["reason"] for item in record["skipped"] if "feta24" in item["task"])


def test_switch_refuses_when_nothing_is_left(partial_root, monkeypatch):
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(partial_root))
    monkeypatch.setenv("MEDVISION_SKIP_MISSING", "1")
    with pytest.raises(PlanError, match="would skip every requested MedVision subtask"):
        preflight(["medvision_tl_brats24_task04_axial"])


def test_switch_does_not_hide_a_missing_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("MEDVISION_SKIP_MISSING", "1")
    with pytest.raises(PlanError, match="nowhere does not exist"):
        preflight(["medvision_tl"])


def test_bad_switch_value_names_the_variable(partial_root, monkeypatch):
    from medvision_tasks.errors import SettingsError

    monkeypatch.setenv("MEDVISION_DATA_DIR", str(partial_root))
    monkeypatch.setenv("MEDVISION_SKIP_MISSING", "maybe")
    with pytest.raises(SettingsError, match=r"MEDVISION_SKIP_MISSING='maybe': expected one of 0, 1"):
        preflight(["medvision_tl"])


def test_cli_run_skips_missing_subtasks_and_records_them(partial_root, tmp_path):
    out = tmp_path / "out"
    args = ["run", "--model", "medvision_random", "--tasks", "medvision_tl,medvision_ad", "--limit", "1"]
    proc = run_medvision_eval(
        [*args, "--output_path", str(out)], {"MEDVISION_DATA_DIR": str(partial_root), "MEDVISION_SKIP_MISSING": "1"}
    )
    assert proc.returncode == 0, describe(proc)
    assert "MEDVISION_SKIP_MISSING=1: skipping 12 subtask(s)" in proc.stderr, describe(proc)
    assert set(samples_files(out)) == KEPT
    results = results_json(out)
    assert set(results["groups"]) == {"medvision_tl", "medvision_ad"}
    skipped = {item["task"] for item in results["medvision_skipped"]["skipped"]}
    assert len(skipped) == 12 and not skipped & KEPT
    assert json.loads((out / SKIPPED_FILE).read_text())["skipped"] == results["medvision_skipped"]["skipped"]
    run_record = json.loads((out / "medvision_run.json").read_text())
    assert run_record["skipped"]["skipped"] == results["medvision_skipped"]["skipped"]
    for path in samples_files(out).values():
        assert len(read_records(path)) == 1

    failed = run_medvision_eval(
        [*args, "--output_path", str(tmp_path / "o2")], {"MEDVISION_DATA_DIR": str(partial_root)}
    )
    assert failed.returncode != 0
    assert "MEDVISION_SKIP_MISSING=1 to skip them" in failed.stdout + failed.stderr, describe(failed)


def test_python_api_task_manager_drops_skipped_subtasks(partial_root, monkeypatch):
    """Without the CLI (no match_tasks), loading a group still drops the subtasks of absent datasets."""
    import lmms_eval.tasks

    from medvision_tasks.taskhook import patch_task_manager, tasks_dir

    assert patch_task_manager(lmms_eval.tasks)
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(partial_root))
    monkeypatch.setenv("MEDVISION_SKIP_MISSING", "1")
    monkeypatch.setenv("MEDVISION_GEOMETRY", "native")  # lmms-eval builds the first prompt while loading
    manager = lmms_eval.tasks.TaskManager("ERROR", include_path=tasks_dir())
    loaded = manager.load_task_or_group(["medvision_tl", "medvision_tl_brats24_task04_axial"])
    ((group, members),) = loaded.items()
    assert group.group_name == "medvision_tl" and set(members) == {"medvision_tl_kits23_task01_axial"}
    assert "medvision_tl_brats24_task04_axial" in preflight_module.skipped_subtasks()
