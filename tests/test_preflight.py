"""Bad data roots fail before any model is built, with one message naming the path and the fix."""

from __future__ import annotations

import shutil

import pytest
from e2e_utils import describe, run_medvision_eval, samples_files

from medvision_tasks.errors import PlanError
from medvision_tasks.preflight import expand, preflight

TL = "medvision_tl_kits23_task01_axial"
# A replay model whose file does not exist: if it were built first, its error would show instead.
MODEL = ["--model", "medvision_replay", "--model_args", "path=/nonexistent/responses.jsonl"]


def test_expand_groups():
    names = {s.name for s in expand(["medvision_tl"])}
    assert len(names) == 10 and TL in names
    assert len(expand(["medvision"])) == 43
    assert len(expand(["medvision_demo"])) == 8
    assert expand(["mmmu_val"]) == []


def test_preflight_messages(tmp_path, monkeypatch, demo_root):
    monkeypatch.delenv("MEDVISION_DATA_DIR", raising=False)
    with pytest.raises(PlanError, match=r"MEDVISION_DATA_DIR is not set"):
        preflight([TL])
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(PlanError, match=r"missing does not exist; set MEDVISION_DATA_DIR"):
        preflight([TL])
    (tmp_path / "root" / "Datasets").mkdir(parents=True)
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(tmp_path / "root"))
    with pytest.raises(PlanError, match=r"(?s)missing under .*KiTS23.*needed by: medvision_tl_kits23_task01_axial"):
        preflight(["medvision_tl"])
    shutil.copytree(demo_root / "Datasets" / "KiTS23", tmp_path / "root" / "Datasets" / "KiTS23")
    preflight([TL])  # present
    (tmp_path / "root" / "Datasets" / "KiTS23" / "benchmark_plan_biometry_v1.0.0.json.gz").unlink()
    (tmp_path / "root" / "Datasets" / "KiTS23" / "benchmark_plan_biometry_v1.1.0.json.gz").unlink()
    with pytest.raises(PlanError, match=r"no benchmark_plan_biometry_v\*\.json\.gz <= 1\.0\.0 \(found: none\)"):
        preflight([TL])


def test_cli_fails_before_model_load(tmp_path):
    proc = run_medvision_eval(
        ["run", *MODEL, "--tasks", TL, "--output_path", str(tmp_path / "o")],
        {"MEDVISION_DATA_DIR": str(tmp_path / "empty")},
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "empty does not exist; set MEDVISION_DATA_DIR" in out, describe(proc)
    assert "/nonexistent/responses.jsonl" not in out.replace("path=/nonexistent/responses.jsonl", "")


def test_real_task_on_a_phantom_root(tmp_path, demo_root):
    root = tmp_path / "root"
    shutil.copytree(demo_root / "Datasets" / "KiTS23", root / "Datasets" / "KiTS23")
    proc = run_medvision_eval(
        ["run", "--model", "medvision_random", "--tasks", TL, "--output_path", str(tmp_path / "o")],
        {"MEDVISION_DATA_DIR": str(root)},
    )
    assert proc.returncode == 0, describe(proc)
    assert TL in samples_files(tmp_path / "o")
    assert (tmp_path / "o" / "medvision_run.json").is_file()
