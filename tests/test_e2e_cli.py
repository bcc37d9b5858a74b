"""The real lmms-eval CLI on medvision_demo: documented include form, baselines, replay, leaderboard."""

from __future__ import annotations

import json
import math

import pytest
from e2e_utils import describe, read_records, results_json, run_lmms_eval, run_medvision_eval, samples_files

from medvision_tasks.row_cache import rows_for_config

TL_TASK = "medvision_demo_tl_kits23_task01_axial"
TL_CONFIG = "KiTS23_TumorLesionSize_Task01_Axial_Test"


@pytest.fixture(scope="module")
def tasks_dir() -> str:
    proc = run_medvision_eval(["tasks-dir"])
    assert proc.returncode == 0, describe(proc)
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def baseline_runs(tmp_path_factory, tasks_dir):
    """medvision_random (documented --include_path form, hook off) and medvision_prior (zero-flag)."""
    out = tmp_path_factory.mktemp("baselines")
    proc = run_lmms_eval(
        [
            "--include_path",
            tasks_dir,
            "--model",
            "medvision_random",
            "--tasks",
            "medvision_demo",
            "--output_path",
            str(out / "random"),
            "--log_samples",
        ],
        {"MEDVISION_NO_TASK_HOOK": "1"},
    )
    assert proc.returncode == 0, describe(proc)
    proc = run_lmms_eval(
        [
            "--model",
            "medvision_prior",
            "--tasks",
            "medvision_demo",
            "--output_path",
            str(out / "prior"),
            "--log_samples",
        ]
    )
    assert proc.returncode == 0, describe(proc)
    return out


def test_include_path_form_and_records(baseline_runs, demo_manifest):
    files = samples_files(baseline_runs / "random")
    assert len(files) == 8
    rec = read_records(files["medvision_demo_detection_kits23_task01_axial"])[0]
    for key in (
        "dataset",
        "taskID",
        "slice_dim",
        "slice_idx",
        "image_file_rel",
        "label_name",
        "region_label",
        "modality",
        "parsed",
        "success",
        "metrics",
        "settings",
        "settings_id",
        "model",
    ):
        assert key in rec
    assert rec["dataset"] == "KiTS23" and rec["model"]["adapter"] == "medvision_random"
    assert rec["data_root_kind"] == "demo" and rec["success"] is True
    tl = read_records(files[TL_TASK])[0]
    assert tl["geometry"]["rule"] == "native" and tl["geometry"]["canvas"] == tl["image_size_2d"]


def test_random_is_seeded_and_in_range(baseline_runs):
    files = samples_files(baseline_runs / "random")
    for path in files.values():
        for rec in read_records(path):
            assert rec["success"], rec
            if rec["family"] == "detection":
                x0, y0, x1, y1 = rec["parsed"]
                assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
            elif rec["family"] == "tl":
                major, minor = rec["parsed"]
                assert 1 <= minor <= major
            elif rec["metric_type"] == "angle":
                assert 0 <= rec["parsed"][0] <= 90
    from medvision_adapters.baselines import seeded_rng

    assert seeded_rng(1234, "X", 3).random() == seeded_rng(1234, "X", 3).random()


def test_prior_differs_from_random(baseline_runs):
    rnd = results_json(baseline_runs / "random")["results"]
    pri = results_json(baseline_runs / "prior")["results"]
    task = "medvision_demo_detection_kits23_task01_axial"
    assert pri[task]["iou,none"] > rnd[task]["iou,none"]
    assert pri[TL_TASK]["mae,none"] != rnd[TL_TASK]["mae,none"]


def test_leaderboard_over_both_runs(baseline_runs):
    proc = run_medvision_eval(["leaderboard", str(baseline_runs), "--allow-demo", "--format", "json"])
    assert proc.returncode == 0, describe(proc)
    board = json.loads(proc.stdout)
    models = {row["model"] for row in board["detection"]}
    assert models == {"random", "prior"}
    groups = {(row["model"], row["group"]) for row in board["detection"]}
    assert ("random", "anatomy") in groups and ("prior", "tumor_lesion") in groups
    assert {row["group"] for row in board["ad"]} >= {"ceph_distance", "ceph_angle", "feta_distance"}
    for row in board["detection"]:
        for col in ("R", "P", "F1", "IoU", "SR", "IoU>0.5"):
            assert 0 <= row[col] <= 100
    text = run_medvision_eval(["leaderboard", str(baseline_runs), "--allow-demo"])
    assert text.returncode == 0 and "Table 2" in text.stdout and "Table 3" in text.stdout and "Table 4" in text.stdout


def test_leaderboard_without_samples_says_log_samples(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    proc = run_medvision_eval(["leaderboard", str(tmp_path)])
    assert proc.returncode != 0 and "--log_samples" in proc.stderr


def test_replay_reproduces_hand_computed_metrics(tmp_path, demo_root):
    rows = rows_for_config(demo_root, TL_CONFIG)
    g = [
        (r["biometric_profile"]["metric_value_major_axis"][0], r["biometric_profile"]["metric_value_minor_axis"][0])
        for r in rows[:2]
    ]
    lines = [
        {"config": TL_CONFIG, "row": 0, "response": f"{g[0][0]}, {g[0][1]}"},  # exact: MAE 0
        {"config": TL_CONFIG, "row": 1, "response": f"The axes are {g[1][0] + 2}, {g[1][1] - 1}"},  # MAE 1.5
        {"config": TL_CONFIG, "row": 2, "response": "no numbers here"},  # failure
        {"config": TL_CONFIG, "row": 3, "response": ""},  # failure
    ]  # rows 4.. are missing: empty responses, counted as failures
    path = tmp_path / "responses.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "replay"
    proc = run_lmms_eval(
        [
            "--model",
            "medvision_replay",
            "--model_args",
            f"path={path}",
            "--tasks",
            TL_TASK,
            "--output_path",
            str(out),
            "--log_samples",
        ]
    )
    assert proc.returncode == 0, describe(proc)
    assert f"{len(rows) - 4} of {len(rows)} request(s) had no saved response" in proc.stdout + proc.stderr
    res = results_json(out)["results"][TL_TASK]
    n = len(rows)
    re1 = (2 / g[1][0] + 1 / g[1][1]) / 2
    assert res["success_rate,none"] == pytest.approx(2 / n)
    assert res["mae,none"] == pytest.approx(0.75)
    assert res["mre,none"] == pytest.approx(re1 / 2)
    assert res["mre_lt_010,none"] == pytest.approx((1 + (re1 < 0.1)) / n)
    records = read_records(samples_files(out)[TL_TASK])
    assert [r["success"] for r in records[:4]] == [True, True, False, False]
    assert not any(r["success"] for r in records[4:])
    assert math.isclose(records[1]["metrics"]["mae"], 1.5)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json}\n", r"responses.jsonl:1: not valid JSON"),
        ('{"config": "X", "row": 0, "response": "1"}\n{"row": 1}\n', r"responses.jsonl:2: expected a samples line"),
    ],
)
def test_replay_bad_input(tmp_path, content, message):
    import re

    path = tmp_path / "responses.jsonl"
    path.write_text(content)
    # lmms-eval itself exits 0 after logging an error; `medvision-eval run` turns "no results" into exit 1.
    proc = run_medvision_eval(
        [
            "run",
            "--model",
            "medvision_replay",
            "--model_args",
            f"path={path}",
            "--tasks",
            TL_TASK,
            "--output_path",
            str(tmp_path / "out"),
        ]
    )
    assert proc.returncode == 1, describe(proc)
    assert re.search(message, proc.stdout + proc.stderr), describe(proc)
    assert not list((tmp_path / "out").rglob("*_results.json"))
    missing = run_medvision_eval(
        [
            "run",
            "--model",
            "medvision_replay",
            "--model_args",
            f"path={tmp_path}/nope.jsonl",
            "--tasks",
            TL_TASK,
            "--output_path",
            str(tmp_path / "out2"),
        ]
    )
    assert missing.returncode == 1 and "does not exist" in missing.stdout + missing.stderr
