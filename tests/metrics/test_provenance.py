"""Row provenance in every record (plan file/version/hash, Arrow build + remap, plan overrides) and the
leaderboard's refusal to mix records of one config built from different rows."""

from __future__ import annotations

import hashlib
import json

import pytest
from medvision_metrics.errors import RecordError
from medvision_metrics.leaderboard import build_leaderboard
from mv_records import make_record

from medvision_tasks import hooks
from medvision_tasks.row_cache import file_sha256

KITS_DET = "KiTS23_BoxSize_Task01_Axial_Test"


def _stub(task: str = "t_prov") -> dict:
    return {"mv_task": task, "mv_config": KITS_DET, "mv_family": "detection", "mv_variant": {}}


def _record_of(doc: dict) -> dict:
    return hooks.process_results(doc, ["0.1, 0.1, 0.5, 0.5"])["mv_record"]


def test_plan_rows_record_plan_file_version_and_hash(fixture_root, monkeypatch):
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(fixture_root))
    monkeypatch.setenv("MEDVISION_SAMPLE_CAP", "2")
    doc = hooks.build_rows(_stub())[0]
    source = _record_of(doc)["row_source"]
    plan = fixture_root / "Datasets/KiTS23/benchmark_plan_detection_v1.0.0.json.gz"
    assert source == {
        "kind": "plan",
        "plan_file": "Datasets/KiTS23/benchmark_plan_detection_v1.0.0.json.gz",
        "plan_version": "1.0.0",
        "plan_sha256": file_sha256(plan),
        "overrides": None,
    }


def test_overrides_are_recorded_with_hash_and_fields(fixture_root, tmp_path, monkeypatch):
    text = json.dumps(
        {
            "KiTS23": {
                "detection": {"01": {"image_description": "an overridden description", "labels_map": {"1": "kidney"}}},
                "biometry": {"01": {"image_description": "not this config"}},
            }
        }
    )
    path = tmp_path / "overrides.json"
    path.write_text(text)
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(fixture_root))
    monkeypatch.setenv("MEDVISION_SAMPLE_CAP", "2")
    monkeypatch.setenv("MEDVISION_PLAN_OVERRIDES", str(path))
    doc = hooks.build_rows(_stub("t_prov_over"))[0]
    overrides = _record_of(doc)["row_source"]["overrides"]
    assert overrides["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert overrides["fields"] == ["image_description", "labels_map"]
    assert "image_description" in overrides["changed"]


def test_arrow_rows_record_the_build_and_remap(fixture_root, tmp_path, monkeypatch):
    import datasets

    from medvision_tasks.data import official_view
    from medvision_tasks.row_cache import rows_for_config

    ds_dir = (fixture_root / "Datasets" / "KiTS23").resolve()
    rows = [official_view(r, ds_dir) for r in rows_for_config(fixture_root, KITS_DET, cap=3)]
    for r in rows:
        for key in ("image_file", "mask_file"):
            if key in r:
                r[key] = "/builder/KiTS23/" + r[key]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "arrow" / KITS_DET))
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(fixture_root))
    monkeypatch.setenv("MEDVISION_ARROW_DIR", str(tmp_path / "arrow"))
    monkeypatch.setenv("MEDVISION_PATH_REMAP", f"/builder/KiTS23={ds_dir}")
    source = _record_of(hooks.build_rows(_stub("t_prov_arrow"))[0])["row_source"]
    assert source["kind"] == "arrow" and source["arrow_name"] == KITS_DET
    assert source["path_remap"] == [["/builder/KiTS23", str(ds_dir)]]
    assert source["plan_version"] == "1.0.0"


def _source(**changes) -> dict:
    base = {"kind": "plan", "plan_file": "Datasets/KiTS23/p.json.gz", "plan_version": "1.0.0", "plan_sha256": "a"}
    base["overrides"] = None
    return {**base, **changes}


def test_leaderboard_refuses_mixed_row_sources_unless_allowed():
    one = make_record(row=0, adapter="medvision_v0", row_source=_source())
    other = make_record(row=0, adapter="medvision_random", row_source=_source(plan_sha256="b"))
    with pytest.raises(RecordError, match="evaluated on different rows.*--allow-mixed"):
        build_leaderboard([one, other])
    board = build_leaderboard([one, other], allow_mixed=True)
    assert any(w.startswith("mixed row sources accepted") for w in board["warnings"])
    same = make_record(row=0, adapter="medvision_random", row_source=_source())
    assert not any("row source" in w for w in build_leaderboard([one, same])["warnings"])


def test_leaderboard_refuses_an_override_mixed_with_plain_rows():
    plain = make_record(row=0, adapter="medvision_v0", row_source=_source())
    changed = _source(overrides={"sha256": "c", "fields": ["labels_map"], "changed": ["labels_map"]})
    over = make_record(row=0, adapter="medvision_random", row_source=changed)
    with pytest.raises(RecordError, match="MEDVISION_PLAN_OVERRIDES"):
        build_leaderboard([plain, over])
