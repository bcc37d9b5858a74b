"""Data faults met during a real `medvision-eval run` (lmms-eval CLI): exit 1, one error line, no traceback."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest
from e2e_utils import describe, run_medvision_eval

from medvision_tasks.integrity import file_problem
from medvision_tasks.runerrors import PREFIX

pytestmark = pytest.mark.e2e
TASK = "medvision_demo_tl_kits23_task01_axial"
PLAN = "Datasets/KiTS23/benchmark_plan_biometry_v1.0.0.json.gz"


def _first_test_image(root: Path) -> str:
    plan = json.loads(gzip.decompress((root / PLAN).read_bytes()))
    return plan["tasks"][0]["test_cases"][0]["image_file"]


def _edit_plan(root: Path, edit) -> None:
    plan = json.loads(gzip.decompress((root / PLAN).read_bytes()))
    edit(plan["tasks"][0])
    (root / PLAN).write_bytes(gzip.compress(json.dumps(plan).encode()))


def _break(root: Path, fault: str) -> str:
    """Apply one fault to a copy of the demo root; returns the text the error line must name."""
    image = root / "Datasets/KiTS23" / _first_test_image(root)
    if fault == "missing":
        image.unlink()
    elif fault == "truncated":
        data = image.read_bytes()
        image.write_bytes(data[: len(data) // 2])
    elif fault == "not_nifti":
        image.write_bytes(gzip.compress(b"this is a text file, not a NIfTI volume\n" * 20))
    elif fault == "gzip_garbage":
        image.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(4000))
    elif fault == "malformed_plan":
        (root / PLAN).write_bytes(gzip.compress(b'{"tasks": [ {"task_ID": "01", '))
        return str(root / PLAN)
    elif fault == "dotdot_path":

        def escape(task):
            task["test_cases"][0]["image_file"] = "../../outside/case.nii.gz"

        _edit_plan(root, escape)
        return "../../outside/case.nii.gz"
    return str(image)


@pytest.fixture
def broken_root(demo_root, tmp_path):
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    return root


@pytest.mark.parametrize(
    "fault", ["missing", "truncated", "not_nifti", "gzip_garbage", "malformed_plan", "dotdot_path"]
)
def test_data_fault_gives_one_line_and_exit_1(broken_root, tmp_path, fault):
    named = _break(broken_root, fault)
    proc = run_medvision_eval(
        ["run", "--model", "medvision_prior", "--tasks", TASK, "--output_path", str(tmp_path / "out")],
        {"MEDVISION_DEMO_DIR": str(broken_root)},
    )
    assert proc.returncode == 1, describe(proc)
    lines = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, describe(proc)
    line = lines[0]
    assert line.startswith(PREFIX) and named in line, describe(proc)
    assert any(fix in line.lower() for fix in ("re-download", "restore", "fix the plan")), line
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, describe(proc)
    assert "RetryError" not in proc.stderr + proc.stdout
    run = json.loads((tmp_path / "out" / "medvision_run.json").read_text())
    assert run["exit_status"] == 1


def test_debug_verbosity_shows_the_traceback(broken_root, tmp_path):
    named = _break(broken_root, "truncated")
    proc = run_medvision_eval(
        [
            "run",
            "--model",
            "medvision_prior",
            "--tasks",
            TASK,
            "--output_path",
            str(tmp_path / "out"),
            "--verbosity",
            "DEBUG",
        ],
        {"MEDVISION_DEMO_DIR": str(broken_root)},
    )
    assert proc.returncode == 1, describe(proc)
    assert "Traceback" in proc.stderr and PREFIX + named in proc.stderr, describe(proc)


@pytest.mark.parametrize("fault", ["missing", "truncated", "not_nifti", "gzip_garbage"])
def test_file_problem_names_each_fault(broken_root, fault):
    path = _break(broken_root, fault)
    assert file_problem(path) is not None
    intact = broken_root / "Datasets/KiTS23/Masks"
    assert all(file_problem(p) is None for p in intact.iterdir())
