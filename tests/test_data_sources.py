"""Row cache (docs/reference.md §1.11), plan overrides (§1.3, §9 Q4) and bad plans/files (issue 3) on the fixture
root."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from medvision_tasks import hooks
from medvision_tasks.arrow_rows import RowSources, rows_for_subtask
from medvision_tasks.data import RowStats
from medvision_tasks.errors import PlanError, SettingsError
from medvision_tasks.row_cache import ROW_CACHE, rows_for_config
from medvision_tasks.settings import Settings

KITS_DET = "KiTS23_BoxSize_Task01_Axial_Test"
KITS_TL = "KiTS23_TumorLesionSize_Task01_Axial_Test"


def _copy_dataset(fixture_root: Path, tmp_path: Path, name: str) -> Path:
    dst = tmp_path / "Datasets" / name
    shutil.copytree(fixture_root / "Datasets" / name, dst)
    return dst


def _rewrite_plan(path: Path, mutate) -> None:
    plan = json.loads(gzip.open(path).read())
    mutate(plan)
    path.write_bytes(gzip.compress(json.dumps(plan).encode()))


# ---------------------------------------------------------------------------------------------- row cache
def test_row_cache_second_call_reads_the_cache(fixture_root, tmp_path):
    hits, misses, writes = ROW_CACHE.hits, ROW_CACHE.misses, ROW_CACHE.writes
    first = rows_for_config(fixture_root, KITS_DET, cap=5, cache_dir=tmp_path)
    assert (ROW_CACHE.hits, ROW_CACHE.misses, ROW_CACHE.writes) == (hits, misses + 1, writes + 1)
    second = rows_for_config(fixture_root, KITS_DET, cap=5, cache_dir=tmp_path)
    assert ROW_CACHE.hits == hits + 1 and second == first and len(first) == 5
    assert [list(r) for r in second] == [list(r) for r in first]
    files = list((tmp_path / "rows").glob("*.jsonl.gz"))
    assert len(files) == 1 and files[0].name.startswith(KITS_DET)
    # every key part matters: cap, filter mode, ceiling
    rows_for_config(fixture_root, KITS_DET, cap=0, cache_dir=tmp_path)
    rows_for_config(fixture_root, KITS_DET, cap=5, filtering=False, cache_dir=tmp_path)
    rows_for_config(fixture_root, KITS_TL, cap=5, planner_version="latest", cache_dir=tmp_path)
    rows_for_config(fixture_root, KITS_TL, cap=5, cache_dir=tmp_path)
    assert ROW_CACHE.hits == hits + 1 and len(list((tmp_path / "rows").glob("*.jsonl.gz"))) == 5


def test_row_cache_follows_the_plan_bytes(fixture_root, tmp_path):
    root = tmp_path / "root"
    plan = _copy_dataset(fixture_root, root, "KiTS23") / "benchmark_plan_detection_v1.0.0.json.gz"
    before = rows_for_config(root, KITS_DET, cache_dir=tmp_path / "cache")
    _rewrite_plan(plan, lambda p: p["tasks"][0]["labels_map"].update({"1": "left kidney"}))
    misses = ROW_CACHE.misses
    after = rows_for_config(root, KITS_DET, cache_dir=tmp_path / "cache")
    assert ROW_CACHE.misses == misses + 1 and after[0]["mv_label_name"] == "left kidney" != before[0]["mv_label_name"]


def test_cap_stops_flattening_early(fixture_root):
    full, capped = RowStats(), RowStats()
    rows_for_config(fixture_root, KITS_DET, stats=full)
    rows = rows_for_config(fixture_root, KITS_DET, cap=2, stats=capped)
    assert len(rows) == 2 and capped.kept == 2 and capped.flattened < full.flattened


def test_build_rows_uses_the_cache_dir_setting(fixture_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(fixture_root))
    monkeypatch.setenv("MEDVISION_CACHE_DIR", str(tmp_path))
    stub = {"mv_task": "t_cache", "mv_config": KITS_DET, "mv_family": "detection", "mv_variant": {}}
    first = hooks.build_rows(dict(stub))
    hits = ROW_CACHE.hits
    assert hooks.build_rows(dict(stub)) == first and ROW_CACHE.hits == hits + 1
    monkeypatch.setenv("MEDVISION_ROW_CACHE", "0")
    assert RowSources.from_env().cache_dir is None


# ------------------------------------------------------------------------------------------ plan overrides
def test_plan_overrides_fix_stale_labels_and_descriptions(fixture_root, tmp_path, monkeypatch):
    overrides = {
        "KiTS23": {
            "detection": {"01": {"labels_map": {"2": "kidney tumor"}, "image_description": "contrast CT scan"}},
            "segmentation": {"01": {"labels_map": {"2": "kidney tumour (region)"}}},
            "biometry": {"01": {"image_modality": "CT (venous)"}},
        }
    }
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps(overrides))
    monkeypatch.setenv("MEDVISION_PLAN_OVERRIDES", str(path))
    sources = RowSources.from_env()
    plain = rows_for_config(fixture_root, KITS_DET)
    rows = rows_for_subtask(fixture_root, KITS_DET, Settings(sample_cap=0), sources)
    assert [r["slice_idx"] for r in rows] == [r["slice_idx"] for r in plain]
    by_label = {r["label"]: r for r in rows}
    assert by_label[2]["mv_label_name"] == "kidney tumor" and by_label[2]["mv_region_label"] == "kidney tumour (region)"
    assert by_label[1]["mv_label_name"] == {r["label"]: r for r in plain}[1]["mv_label_name"]  # maps merge per key
    assert {r["mv_image_description"] for r in rows} == {"contrast CT scan"}
    tl = rows_for_subtask(fixture_root, KITS_TL, Settings(sample_cap=0), sources)
    assert {r["mv_modality"] for r in tl} == {"CT (venous)"}
    monkeypatch.setenv(
        "MEDVISION_PLAN_OVERRIDES", json.dumps({"KiTS23": {"detection": {"01": {"image_description": "x"}}}})
    )
    assert rows_for_subtask(fixture_root, KITS_DET, Settings(), RowSources.from_env())[0]["mv_image_description"] == "x"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/no/such/overrides.json", r"MEDVISION_PLAN_OVERRIDES='/no/such/overrides.json': file not found"),
        ("{not json", r"MEDVISION_PLAN_OVERRIDES: invalid JSON"),
        ('{"KiTS23": {"masks": {}}}', r"\['KiTS23'\]\['masks'\]: unknown plan kind"),
        ('{"KiTS23": {"detection": {"1": {}}}}', r"task IDs are two-digit strings"),
        ('{"KiTS23": {"detection": {"01": {"test_cases": []}}}}', r"'test_cases' cannot be overridden"),
        ('{"KiTS23": {"detection": {"01": {"labels_map": ["a"]}}}}', r"'labels_map' must be an object, got list"),
    ],
)
def test_bad_plan_overrides(value, message, monkeypatch):
    monkeypatch.setenv("MEDVISION_PLAN_OVERRIDES", value)
    with pytest.raises(SettingsError, match=message):
        RowSources.from_env()


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.update(task_ID=1), r"field tasks\[0\]\.task_ID is 1, not a two-digit string"),
        (lambda t: t.update(image_description=None), r"field tasks\[0\]\.image_description is a NoneType, not a str"),
        (lambda t: t.update(test_cases={}), r"field tasks\[0\]\.test_cases is not a list"),
        (lambda t: t["test_cases"][0].pop("image_file_info"), r"test_cases\[0\]\.image_file_info is missing"),
        (lambda t: t["test_cases"][0].update(image_file=None), r"test_cases\[0\]\.image_file is None, not a non-empty"),
        (
            lambda t: t["test_cases"][1]["image_file_info"].update(voxel_size=[1.0, "2"]),
            r"test_cases\[1\]\.image_file_info\.voxel_size is \[1\.0, '2'\], not a list of 3 numbers",
        ),
        (
            lambda t: t["test_cases"][0]["slice_profiles_z"][1].pop("slice_profile"),
            r"test_cases\[0\]\.slice_profiles_z\[1\]: malformed slice entry \(KeyError: 'slice_profile'\)",
        ),
        (
            lambda t: t["test_cases"][0]["slice_profiles_z"][0]["slice_profile"][0].update(bboxes=[{"dimensions": 3}]),
            r"slice_profiles_z\[0\]: malformed slice entry \(TypeError",
        ),
    ],
)
def test_plans_failing_schema_checks(fixture_root, tmp_path, mutate, message):
    plan = _copy_dataset(fixture_root, tmp_path, "KiTS23") / "benchmark_plan_detection_v1.0.0.json.gz"
    _rewrite_plan(plan, lambda p: mutate(p["tasks"][0]))
    with pytest.raises(PlanError, match=message):
        rows_for_config(tmp_path, KITS_DET)


def test_missing_files_are_reported_as_one_list(fixture_root, tmp_path, monkeypatch):
    ds = _copy_dataset(fixture_root, tmp_path, "KiTS23")
    (ds / "Images" / "kits23_000.nii.gz").unlink()
    (ds / "Images" / "kits23_001.nii.gz").unlink()
    (ds / "Landmarks-Label2-v1.0.0" / "kits23_001.json.gz").unlink()
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(tmp_path))
    stub = {"mv_task": "t_missing", "mv_config": KITS_TL, "mv_family": "tl", "mv_variant": {}}
    with pytest.raises(
        PlanError,
        match=r"(?s)3 file\(s\) referenced by the plan are missing under .*"
        r"kits23_000\.nii\.gz.*kits23_001\.nii\.gz.*kits23_001\.json\.gz.*medvision-eval doctor",
    ):
        hooks.build_rows(stub)
