"""Independent machines split by --tasks: the leaderboard over their folders equals one run over all tasks;
a duplicated folder is refused naming both files; missing paper subtasks are stated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from e2e_utils import describe, run_lmms_eval, run_medvision_eval

from medvision_tasks.coverage import missing_paper_subtasks, paper_subtasks

pytestmark = pytest.mark.e2e

DET = "medvision_demo_detection_kits23_task01_axial"
TL = "medvision_demo_tl_kits23_task01_axial"


def run(tasks: str, out: Path) -> None:
    proc = run_lmms_eval(
        ["--model", "medvision_random", "--tasks", tasks, "--limit", "3", "--output_path", str(out), "--log_samples"]
    )
    assert proc.returncode == 0, describe(proc)


def leaderboard(*paths: Path, extra: tuple[str, ...] = ()) -> dict:
    proc = run_medvision_eval(["leaderboard", *map(str, paths), "--allow-demo", "--format", "json", *extra])
    assert proc.returncode == 0, describe(proc)
    result = json.loads(proc.stdout)
    result.pop("warnings")
    for model in result["models"]:
        model.pop("records", None)
    return result


def test_split_by_tasks_equals_one_run_and_duplicates_are_refused(tmp_path: Path) -> None:
    run(f"{DET},{TL}", tmp_path / "all")
    run(DET, tmp_path / "m1")
    run(TL, tmp_path / "m2")
    assert leaderboard(tmp_path / "m1", tmp_path / "m2") == leaderboard(tmp_path / "all")

    shutil.copytree(tmp_path / "m1", tmp_path / "m1-copy")
    proc = run_medvision_eval(
        ["leaderboard", str(tmp_path / "m1"), str(tmp_path / "m1-copy"), str(tmp_path / "m2"), "--allow-demo"]
    )
    assert proc.returncode == 2
    (one,) = (tmp_path / "m1").rglob("*_samples_*.jsonl")
    (copy,) = (tmp_path / "m1-copy").rglob("*_samples_*.jsonl")
    assert str(one) in proc.stderr and str(copy) in proc.stderr and "--latest" in proc.stderr
    proc = run_medvision_eval(
        ["leaderboard", str(tmp_path / "m1"), str(tmp_path / "m1-copy"), "--allow-demo", "--last-wins"]
    )
    assert proc.returncode == 0, describe(proc)
    copy.rename(copy.with_name("29991231_235959_" + copy.name.split("_", 2)[2]))  # a later run of the same task
    proc = run_medvision_eval(
        ["leaderboard", str(tmp_path / "m1"), str(tmp_path / "m1-copy"), "--allow-demo", "--latest"]
    )
    assert proc.returncode == 0 and "kept the newest run" in proc.stdout + proc.stderr, describe(proc)


def test_missing_paper_subtasks_are_named(tmp_path: Path) -> None:
    paper = paper_subtasks()
    assert len(paper) == 43
    folder = tmp_path / "run" / "some_model"
    folder.mkdir(parents=True)
    for task in paper[:40]:
        (folder / f"20260101_000000_samples_{task}.jsonl").write_text("")
    (lines,) = missing_paper_subtasks([tmp_path / "run"])
    assert lines.startswith("some_model: 3 of 43 paper subtasks") and all(t in lines for t in paper[40:])
    demo_only = tmp_path / "demo" / "m"
    demo_only.mkdir(parents=True)
    (demo_only / f"20260101_000000_samples_{DET}.jsonl").write_text("")
    assert missing_paper_subtasks([tmp_path / "demo"]) == []
