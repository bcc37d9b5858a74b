"""Rows from an official Arrow build (docs/reference.md §1.6): stored order, cap, path remap, and docs identical to plan
rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pytest

from medvision_tasks import hooks
from medvision_tasks.arrow_rows import RowSources, parse_path_remap, remap_path, rows_for_subtask
from medvision_tasks.data import OFFICIAL_FIELDS, PATH_FIELDS
from medvision_tasks.errors import PlanError, SettingsError
from medvision_tasks.row_cache import rows_for_config
from medvision_tasks.settings import Settings

BUILDER = "/data/builder-node-7/MedVision"
CONFIGS = {
    "BraTS24_BoxSize_Task01_Coronal_Test": "detection",
    "KiTS23_TumorLesionSize_Task01_Axial_Test": "tl",
    "Ceph-Biometrics-400_BiometricsFromLandmarks_Distance_Task01_Sagittal_Test": "ad",
    "FeTA24_BiometricsFromLandmarks_Task01_Axial_Test": "ad",
}


def official_rows(rows: list[dict[str, Any]], local_root: Path) -> list[dict[str, Any]]:
    """Reader rows reduced to the official fields, with the absolute paths of a builder machine."""
    out = []
    for row in rows:
        official = {k: row[k] for k in OFFICIAL_FIELDS if k in row}
        for key in PATH_FIELDS:
            if key in official:
                official[key] = official[key].replace(str(local_root.resolve()), BUILDER)
        out.append(official)
    return out


@pytest.fixture(scope="module")
def arrow_dir(fixture_root, tmp_path_factory) -> Path:
    """One save_to_disk folder per config, built from the reader's rows (unfiltered, as a builder might keep)."""
    out = tmp_path_factory.mktemp("arrow")
    for config in CONFIGS:
        rows = official_rows(rows_for_config(fixture_root, config), fixture_root)
        assert all(r["image_file"].startswith(BUILDER) for r in rows)
        datasets.Dataset.from_list(rows).save_to_disk(str(out / config))
    return out


def _stub(config: str, task: str) -> dict[str, Any]:
    return {"mv_task": task, "mv_config": config, "mv_family": CONFIGS[config], "mv_variant": {}}


def test_arrow_docs_equal_plan_docs(fixture_root, arrow_dir, monkeypatch):
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(fixture_root))
    monkeypatch.setenv("MEDVISION_SAMPLE_CAP", "0")
    for config in CONFIGS:
        plan_docs = hooks.build_rows(_stub(config, "t_plan"))
        with monkeypatch.context() as m:
            m.setenv("MEDVISION_ARROW_DIR", str(arrow_dir))
            m.setenv("MEDVISION_PATH_REMAP", f"/elsewhere=/nowhere;{BUILDER}={fixture_root}")
            arrow_docs = hooks.build_rows(_stub(config, "t_arrow"))
        sources = {json.loads(doc.pop("mv_row_source"))["kind"] for doc in plan_docs} | {
            json.loads(doc.pop("mv_row_source"))["kind"] + "-arrow-side" for doc in arrow_docs
        }
        assert sources == {"plan", "arrow-arrow-side"}, sources  # provenance says where each row came from
        for doc in plan_docs + arrow_docs:
            doc.pop("mv_task")
        assert arrow_docs == plan_docs, config
        assert [list(d) for d in arrow_docs] == [list(d) for d in plan_docs]  # same field order too


def test_arrow_rows_are_capped_in_stored_order(fixture_root, arrow_dir):
    config = "BraTS24_BoxSize_Task01_Coronal_Test"
    sources = RowSources(arrow_dir=arrow_dir)
    capped = rows_for_subtask(fixture_root, config, Settings(sample_cap=3), sources)
    assert [r["mv_row"] for r in capped] == [0, 1, 2]
    assert capped == rows_for_config(fixture_root, config, cap=3)  # /<dataset>/ re-rooting works without a remap
    arrow_file = next((arrow_dir / config).glob("*.arrow"))
    by_map = RowSources(arrow_map={config: arrow_file})  # a single .arrow file via MEDVISION_ARROW_MAP
    assert rows_for_subtask(fixture_root, config, Settings(sample_cap=0), by_map) == rows_for_config(
        fixture_root, config
    )
    plan_only = RowSources(arrow_dir=arrow_dir)
    assert rows_for_subtask(fixture_root, config, Settings(), plan_only, use_arrow=False)[0]["mv_row"] == 0


def test_arrow_map_and_remap_parsing(tmp_path, arrow_dir, monkeypatch):
    assert parse_path_remap("/a=/b; /a/long=/c ;") == (("/a/long", "/c"), ("/a", "/b"))
    assert remap_path("/a/long/x.nii.gz", parse_path_remap("/a=/b;/a/long=/c")) == "/c/x.nii.gz"
    with pytest.raises(SettingsError, match=r"MEDVISION_PATH_REMAP: '/only-old' is not old_prefix=new_prefix"):
        parse_path_remap("/only-old")
    config = "KiTS23_TumorLesionSize_Task01_Axial_Test"
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({config: str(arrow_dir / config)}))
    monkeypatch.setenv("MEDVISION_ARROW_MAP", str(mapping))
    assert RowSources.from_env().arrow_source(config) == arrow_dir / config
    mapping.write_text(json.dumps({config: "missing-folder"}))
    with pytest.raises(
        PlanError,
        match=r"MEDVISION_ARROW_MAP: KiTS23_TumorLesionSize_Task01_Axial_Test -> .*"
        r"missing-folder does not exist",
    ):
        RowSources.from_env().arrow_source(config)
    monkeypatch.setenv("MEDVISION_ARROW_DIR", str(tmp_path / "nope"))
    with pytest.raises(SettingsError, match=r"MEDVISION_ARROW_DIR=.*nope' is not a folder"):
        RowSources.from_env()


def test_arrow_rows_of_another_config_are_refused(fixture_root, arrow_dir):
    wrong = RowSources(
        arrow_map={"KiTS23_BoxSize_Task01_Axial_Test": arrow_dir / "BraTS24_BoxSize_Task01_Coronal_Test"}
    )
    with pytest.raises(PlanError, match=r"row 0: row of BraTS24 slice_dim 1 found in the Arrow rows of KiTS23"):
        rows_for_subtask(fixture_root, "KiTS23_BoxSize_Task01_Axial_Test", Settings(), wrong)
    broken = RowSources(arrow_map={"KiTS23_BoxSize_Task01_Axial_Test": arrow_dir})  # a folder of folders
    with pytest.raises(PlanError, match=r"cannot read Arrow rows for KiTS23_BoxSize_Task01_Axial_Test"):
        rows_for_subtask(fixture_root, "KiTS23_BoxSize_Task01_Axial_Test", Settings(), broken)
