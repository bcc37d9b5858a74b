"""Acceptance of the task catalogue on the fixture root (tests/fixture_root.py, real dataset names).

* Every benchmark subtask and every variant (OOD, 336/560/896, CoT) resolves through lmms-eval's
  TaskManager (Python API, include_path = the tasks folder) and yields docs in loader order.
* `--limit N` evaluates the first N rows in loader order.
* `medvision-eval run --tasks medvision_detection --limit 2 --model medvision_prior` completes through the real
  CLI and `medvision-eval leaderboard` groups its samples into the anatomy and tumor/lesion rows.
* How lmms-eval 0.7.3 lists the plugin's tasks: `lmms-eval --tasks list` (zero-flag) shows them;
  `lmms-eval tasks list` does not (it never imports the models), `--include-path` makes it.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from e2e_utils import describe, read_records, results_json, run_lmms_eval, run_medvision_eval, samples_files

from medvision_tasks import hooks
from medvision_tasks.catalogue import build_subtasks, groups, read_catalogue
from medvision_tasks.row_cache import rows_for_config
from medvision_tasks.taskhook import tasks_dir

SUBTASKS = [s for s in build_subtasks(read_catalogue()) if s.set not in ("demo", "demo_spacing")]
GROUPS = groups(build_subtasks(read_catalogue()))


def _row_id(row: dict[str, Any]) -> tuple:
    return (row["mv_row"], row["mv_image_file_rel"], int(row["slice_dim"]), int(row["slice_idx"]), row.get("label"))


@pytest.fixture(scope="module")
def loaded(fixture_root: Path) -> dict[str, Any]:
    """Every non-demo subtask loaded through one TaskManager with MEDVISION_DATA_DIR on the fixture root.

    lmms-eval builds the prompt of the first doc while loading a task, so T/L and A/D need a geometry here.
    """
    from lmms_eval.tasks import TaskManager

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDVISION_DATA_DIR", str(fixture_root))
        mp.setenv("MEDVISION_GEOMETRY", "native")
        manager = TaskManager("ERROR", include_path=tasks_dir())
        tasks = manager.load_task_or_group([s.name for s in SUBTASKS])
        docs = {name: list(task.test_docs()) for name, task in tasks.items()}
    return {"manager": manager, "tasks": tasks, "docs": docs}


def test_every_subtask_and_variant_resolves_and_yields_docs(loaded, fixture_root):
    counts = {}
    for s in SUBTASKS:
        counts[s.set] = counts.get(s.set, 0) + 1
    assert counts == {
        "main": 43,
        "res336": 43,
        "res560": 43,
        "res896": 43,
        "cot": 43,
        "detection_planeood": 48,
        "detection_taskood": 15,
        "tl_planeood": 20,
        "tl_taskood": 7,
        "spacing": 30,
    }
    assert set(loaded["tasks"]) == {s.name for s in SUBTASKS}
    for s in SUBTASKS:
        docs = loaded["docs"][s.name]
        assert docs, s.name
        expected = rows_for_config(fixture_root, s.config)
        assert [_row_id(d) for d in docs] == [_row_id(r) for r in expected], s.name
        assert {d["mv_task"] for d in docs} == {s.name} and {d["mv_config"] for d in docs} == {s.config}
        assert loaded["tasks"][s.name].config.metadata["official_config"] == s.config


def test_every_group_resolves_with_its_members(loaded):
    manager = loaded["manager"]
    for name, (members, _family) in GROUPS.items():
        assert manager.task_index[name]["type"] == "group", name
        assert manager._get_config(name)["task"] == members, name
    assert [len(GROUPS[g][0]) for g in ("medvision_detection", "medvision_tl", "medvision_ad")] == [28, 10, 5]


def test_first_doc_of_every_subtask_renders_and_prompts(loaded, fixture_root, monkeypatch):
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(fixture_root))
    monkeypatch.setenv("MEDVISION_GEOMETRY", "native")
    for s in SUBTASKS:
        task = loaded["tasks"][s.name]
        doc = loaded["docs"][s.name][0]
        (image,) = hooks.doc_to_visual(doc)
        if s.reshape:
            assert image.size == (s.reshape, s.reshape), s.name
        text = hooks.doc_to_text(doc, task.lmms_eval_specific_kwargs)
        assert text.startswith("Task:\nGiven the input medical image") and not text.endswith("\n"), s.name
        assert ("Reasoning steps:" in text) == (s.prompt_style == "cot"), s.name
        assert len(hooks.doc_to_target(doc)) == {"detection": 4, "tl": 2, "ad": 1}[s.family]


def test_generation_kwargs_per_style(loaded):
    for s in SUBTASKS:
        kwargs = loaded["tasks"][s.name].config.generation_kwargs
        expected = {"until": [], "max_new_tokens": 4096} if s.prompt_style == "cot" else {"until": []}
        assert kwargs == expected, s.name


def test_sample_cap_keeps_the_first_rows(fixture_root, monkeypatch):
    from lmms_eval.tasks import TaskManager

    monkeypatch.setenv("MEDVISION_DATA_DIR", str(fixture_root))
    monkeypatch.setenv("MEDVISION_SAMPLE_CAP", "2")
    monkeypatch.setenv("MEDVISION_GEOMETRY", "native")
    name = "medvision_detection_brats24_task06_axial"
    config = "BraTS24_BoxSize_Task06_Axial_Test"
    task = TaskManager("ERROR", include_path=tasks_dir()).load_task_or_group([name])[name]
    docs = list(task.test_docs())
    full = rows_for_config(fixture_root, config)
    assert len(full) > 2 and [_row_id(d) for d in docs] == [_row_id(r) for r in full[:2]]


# ------------------------------------------------------------------------------------ real CLI run
# Region labels for the leaderboard: the fixture's label names are synthetic, so the copy used here names
# label 1 and 2 of every detection task after real v1 labels (label 1 is a tumour in the TUMOUR datasets).
TUMOUR_DATASETS = ("BraTS24", "KiTS23", "KiPA22", "HNTSMRG24", "autoPET-III", "MSD")
ANATOMY_LABEL, TUMOUR_LABEL = "kidney", "kidney tumor"


def _relabelled_copy(fixture_root: Path, out: Path) -> Path:
    shutil.copytree(fixture_root, out)
    for plan in sorted(out.glob("Datasets/*/benchmark_plan_*_v*.json.gz")):
        if "biometry" in plan.name:
            continue
        data = json.loads(gzip.decompress(plan.read_bytes()))
        tumour_first = plan.parent.name in TUMOUR_DATASETS
        for task in data["tasks"]:
            first, second = (TUMOUR_LABEL, ANATOMY_LABEL) if tumour_first else (ANATOMY_LABEL, TUMOUR_LABEL)
            task["labels_map"] = {"1": first, "2": second}
        plan.write_bytes(gzip.compress(json.dumps(data).encode()))
    return out


@pytest.fixture(scope="module")
def detection_run(fixture_root, tmp_path_factory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("detection_run")
    root = _relabelled_copy(fixture_root, base / "root")
    out = base / "out"
    proc = run_medvision_eval(
        [
            "run",
            "--model",
            "medvision_prior",
            "--tasks",
            "medvision_detection",
            "--limit",
            "2",
            "--output_path",
            str(out),
        ],
        {"MEDVISION_DATA_DIR": str(root)},
    )
    assert proc.returncode == 0, describe(proc)
    return {"root": root, "out": out}


def test_detection_run_completes_with_first_rows_in_loader_order(detection_run):
    files = samples_files(detection_run["out"])
    assert set(files) == set(GROUPS["medvision_detection"][0])
    results = results_json(detection_run["out"])
    assert "medvision_detection" in results["groups"]
    for task, path in files.items():
        records = read_records(path)
        assert [r["row"] for r in records] == [0, 1], task
        config = records[0]["config"]
        expected = rows_for_config(detection_run["root"], config)[:2]
        assert [(r["image_file_rel"], r["slice_idx"], r["label"]) for r in records] == [
            (e["mv_image_file_rel"], e["slice_idx"], e["label"]) for e in expected
        ], task
        assert all(r["model"]["adapter"] == "medvision_prior" and r["geometry"] is None for r in records)
    assert (detection_run["out"] / "medvision_run.json").is_file()


def test_leaderboard_groups_anatomy_and_tumor_lesion(detection_run):
    proc = run_medvision_eval(["leaderboard", str(detection_run["out"]), "--format", "json", "--min-group-size", "1"])
    assert proc.returncode == 0, describe(proc)
    board = json.loads(proc.stdout)
    rows = board["detection"]
    assert {row["group"] for row in rows} == {"anatomy", "tumor_lesion"}
    for row in rows:
        for column in ("R", "P", "F1", "IoU", "SR", "IoU>0.5"):
            assert 0 <= row[column] <= 100


# ------------------------------------------------------------------------------------ listing tasks
def test_zero_flag_tasks_list_shows_the_groups():
    proc = run_lmms_eval(["--tasks", "list"])
    assert proc.returncode == 0, describe(proc)
    listed = {line.strip().removeprefix("- ").strip() for line in (proc.stdout + proc.stderr).splitlines()}
    assert set(GROUPS) <= listed
    assert {s.name for s in SUBTASKS} <= listed


def test_tasks_subcommand_needs_include_path():
    """`lmms-eval tasks ...` never imports the models, so the zero-flag hook cannot add the plugin's tasks."""
    bare = run_lmms_eval(["tasks", "list"])
    assert bare.returncode == 0, describe(bare)
    assert "medvision_detection" not in bare.stdout
    explicit = run_lmms_eval(["tasks", "groups", "--include-path", tasks_dir()])
    assert explicit.returncode == 0, describe(explicit)
    for name in GROUPS:
        assert f"|{name} " in explicit.stdout, name
