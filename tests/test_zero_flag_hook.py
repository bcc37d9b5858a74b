"""Guard: `lmms-eval --tasks medvision_demo` with no include flag must find the plugin's tasks.

This fails loudly (never skips) when an lmms-eval release breaks the TaskManager hook.
"""

from __future__ import annotations

from e2e_utils import describe, read_records, run_lmms_eval, samples_files

DEMO_SUBTASKS = {
    "medvision_demo_detection_kits23_task01_axial",
    "medvision_demo_detection_oaizibcm_task01_axial",
    "medvision_demo_tl_kits23_task01_axial",
    "medvision_demo_ad_cephbiometrics400_distance_task01_sagittal",
    "medvision_demo_ad_cephbiometrics400_angle_task01_sagittal",
    "medvision_demo_ad_feta24_task01_sagittal",
    "medvision_demo_ad_feta24_task01_coronal",
    "medvision_demo_ad_feta24_task01_axial",
}


def test_zero_flag_form_finds_demo_tasks(tmp_path, demo_manifest):
    out = tmp_path / "run"
    proc = run_lmms_eval(
        ["--model", "medvision_random", "--tasks", "medvision_demo", "--output_path", str(out), "--log_samples"]
    )
    assert proc.returncode == 0, describe(proc)
    files = samples_files(out)
    assert set(files) == DEMO_SUBTASKS, describe(proc)
    for task, path in files.items():
        records = read_records(path)
        assert records and all(r["task"] == task for r in records)
        assert len(records) == demo_manifest["configs"][records[0]["config"]]["test"]


def test_hook_switch_off_means_task_not_found(tmp_path):
    proc = run_lmms_eval(
        [
            "--model",
            "medvision_random",
            "--tasks",
            "medvision_demo",
            "--output_path",
            str(tmp_path / "run"),
            "--log_samples",
        ],
        {"MEDVISION_NO_TASK_HOOK": "1"},
    )
    assert not samples_files(tmp_path / "run"), describe(proc)
