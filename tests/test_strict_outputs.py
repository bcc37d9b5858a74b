"""Every JSON the demo writes is strict (no NaN/Infinity), lmms-eval's results carry no `mv_record` entries,
records carry their row source, and a 40-digit response gives a leaderboard warning line (real CLI)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from e2e_utils import describe, read_records, results_json, run_lmms_eval, run_medvision_eval, samples_files

from medvision_tasks.row_cache import rows_for_config

pytestmark = pytest.mark.e2e
TL_TASK = "medvision_demo_tl_kits23_task01_axial"
TL_CONFIG = "KiTS23_TumorLesionSize_Task01_Axial_Test"
FORTY_DIGITS = "1" * 40
CHECK = "import json,sys; json.load(open(sys.argv[1]), parse_constant=lambda c: sys.exit(1))"


@pytest.fixture(scope="module")
def demo_outputs(tmp_path_factory, demo_root):
    out = tmp_path_factory.mktemp("strict")
    proc = run_medvision_eval(
        ["run", "--model", "medvision_random", "--tasks", "medvision_demo", "--output_path", str(out / "random")]
    )
    assert proc.returncode == 0, describe(proc)
    g = rows_for_config(demo_root, TL_CONFIG)[1]["biometric_profile"]
    lines = [
        {"config": TL_CONFIG, "row": 0, "response": f"{FORTY_DIGITS}, 20"},
        {"config": TL_CONFIG, "row": 1, "response": f"{g['metric_value_major_axis'][0]}, 5"},
    ]
    responses = out / "responses.jsonl"
    responses.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    proc = run_medvision_eval(
        [
            "run",
            "--model",
            "medvision_replay",
            "--model_args",
            f"path={responses}",
            "--tasks",
            TL_TASK,
            "--output_path",
            str(out / "replay"),
        ]
    )
    assert proc.returncode == 0, describe(proc)
    board = run_medvision_eval(["leaderboard", str(out), "--allow-demo", "--out", str(out / "board")])
    assert board.returncode == 0, describe(board)
    return out, board


def test_every_json_the_demo_writes_is_strict(demo_outputs):
    out, _ = demo_outputs
    files = sorted(p for p in out.rglob("*.json") if p.is_file())
    names = {p.name for p in files}
    assert "medvision_run.json" in names and "leaderboard.json" in names
    assert any(n.endswith("_results.json") for n in names)
    for path in files:  # the acceptance check, verbatim
        proc = subprocess.run([sys.executable, "-c", CHECK, str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{path} is not strict JSON: {proc.stderr}"

    def refuse(constant):
        raise AssertionError(constant)

    for path in (p for p in out.rglob("*.jsonl") if p.is_file()):
        for line in path.read_text().splitlines():
            if line.strip():
                json.loads(line, parse_constant=refuse)


def test_results_have_no_record_entries_and_flag_non_finite_metrics(demo_outputs):
    out, _ = demo_outputs
    for run in ("random", "replay"):
        for task, metrics in results_json(out / run)["results"].items():
            assert not [k for k in metrics if k.startswith("mv_record")], (run, task)
    replay = results_json(out / "replay")
    assert replay["results"][TL_TASK]["mre,none"] is None
    assert replay["medvision_nonfinite"][TL_TASK]["mre,none"] == "inf"
    record = read_records(samples_files(out / "replay")[TL_TASK])[0]  # the record stays in the samples file
    assert record["metrics"]["mre"] is None and record["metrics"]["nonfinite"]["mre"] == "inf"
    assert record["row_source"]["kind"] == "plan" and record["row_source"]["plan_version"] == "1.0.0"


def test_forty_digit_response_gives_a_warning_line(demo_outputs):
    out, board = demo_outputs
    lines = [line for line in board.stdout.splitlines() if "non-finite error" in line]
    assert len(lines) == 1 and "(1)" in lines[0], board.stdout
    data = json.loads((out / "board" / "leaderboard.json").read_text())
    assert any("non-finite error" in w for w in data["warnings"])


def test_plain_lmms_eval_results_are_cleaned_by_the_task_hook(tmp_path):
    """Without `medvision-eval run` the hook (on by default) cleans the results dict before lmms-eval saves it."""
    task = "medvision_demo_detection_kits23_task01_axial"
    proc = run_lmms_eval(
        ["--model", "medvision_random", "--tasks", task, "--output_path", str(tmp_path), "--log_samples"]
    )
    assert proc.returncode == 0, describe(proc)
    metrics = results_json(tmp_path)["results"][task]
    assert "iou,none" in metrics and not [k for k in metrics if k.startswith("mv_record")]
    assert read_records(samples_files(tmp_path)[task])  # the record stays in the samples file
