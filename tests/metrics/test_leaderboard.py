"""docs/reference.md §6: leaderboard rows from synthetic records, hand-computed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from medvision_metrics.errors import RecordError
from medvision_metrics.leaderboard import build_leaderboard
from medvision_metrics.records import load_records
from mv_records import (
    CEPH,
    EXACT_BOX,
    FAILURE,
    ad_records,
    detection_records,
    make_record,
    make_records,
    tl_records,
    write_samples,
)


def rows_by_group(result: dict[str, Any], table: str, source: str = "measured") -> dict[str, dict[str, Any]]:
    return {r["group"]: r for r in result[table] if r["source"] == source}


# ------------------------------------------------------------------------------------------ detection
def test_detection_rows_hand_computed() -> None:
    result = build_leaderboard(detection_records())
    rows = rows_by_group(result, "detection")
    anatomy, tumor = rows["anatomy"], rows["tumor_lesion"]
    # Anatomy: Kidney only (Liver 49 < 50; Others excluded): 40 exact of 50
    assert (anatomy["model"], anatomy["regions"], anatomy["samples"]) == ("medvision_v0_7b", 1, 50)
    for column in ("R", "P", "F1", "IoU", "SR", "IoU>0.5", "F1>0.5"):
        assert anatomy[column] == pytest.approx(80.0)
    # Tumor/Lesion: 30 IoU 1 + 30 IoU 0.5 (counts for IoU>0.5 by >=); F1 half box = 2/3; P 1; R 0.5
    assert (tumor["regions"], tumor["samples"]) == (1, 60)
    assert tumor["IoU"] == pytest.approx(75.0)
    assert tumor["IoU>0.5"] == pytest.approx(100.0)
    assert tumor["F1"] == pytest.approx((30 + 30 * 2 / 3) / 60 * 100)
    assert tumor["P"] == pytest.approx(100.0)
    assert tumor["R"] == pytest.approx(75.0)
    assert tumor["SR"] == pytest.approx(100.0)
    assert tumor["source"] == "measured"


def test_detection_details_flag_excluded_and_small_regions() -> None:
    result = build_leaderboard(detection_records())
    regions = {d["region"]: d for d in result["details"]["detection_regions"]}
    assert set(regions) == {
        "Kidney @ CT (A)",
        "Liver @ CT (A)",
        "Kidney Tumor/Lesion @ CT (A)",
        "Others @ CT (A)",
        "Miscellaneous Tumor/Lesion @ CT (A)",
    }
    assert regions["Others @ CT (A)"]["excluded_key"] and not regions["Others @ CT (A)"]["in_row"]
    assert regions["Miscellaneous Tumor/Lesion @ CT (A)"]["group"] is None
    assert regions["Liver @ CT (A)"]["below_min_group_size"] and not regions["Liver @ CT (A)"]["in_row"]
    assert regions["Liver @ CT (A)"]["IoU"] == pytest.approx(100.0)
    assert regions["Kidney @ CT (A)"]["metrics"]["success_rate"] == pytest.approx(0.8)


def test_min_group_size_option_n_weights_regions() -> None:
    result = build_leaderboard(detection_records(), min_group_size=10)
    anatomy = rows_by_group(result, "detection")["anatomy"]
    # Kidney 50 x 0.8 + Liver 49 x 1.0 over 99 samples
    assert (anatomy["regions"], anatomy["samples"]) == (2, 99)
    assert anatomy["IoU"] == pytest.approx((50 * 0.8 + 49 * 1.0) / 99 * 100)
    assert anatomy["SR"] == pytest.approx((40 + 49) / 99 * 100)


def test_group_row_with_no_qualifying_region_is_none() -> None:
    result = build_leaderboard(make_records(5, region_label="kidney"))
    anatomy = rows_by_group(result, "detection")["anatomy"]
    assert (anatomy["regions"], anatomy["samples"], anatomy["IoU"]) == (0, 0, None)
    assert "tumor_lesion" not in rows_by_group(result, "detection")


def test_box_fix_switch_and_recorded_setting() -> None:
    inverted = "0.75, 0.75, 0.25, 0.25"
    recs = make_records(50, region_label="kidney", response=inverted)
    assert rows_by_group(build_leaderboard(recs), "detection")["anatomy"]["IoU"] == 0.0
    assert rows_by_group(build_leaderboard(recs, box_fix=True), "detection")["anatomy"]["IoU"] == 100.0
    recorded = [make_record(row=i, region_label="kidney", response=inverted) for i in range(50)]
    for r in recorded:
        r["settings"]["box_fix"] = 1
    assert rows_by_group(build_leaderboard(recorded), "detection")["anatomy"]["IoU"] == 100.0
    assert rows_by_group(build_leaderboard(recorded, box_fix=False), "detection")["anatomy"]["IoU"] == 0.0


def test_parse_as_run_uses_the_recorded_mode() -> None:
    settings = {**make_record()["settings"], "parse": "answer_tag"}
    recs = make_records(50, region_label="kidney", response=f"<think>{EXACT_BOX}</think>", settings=settings)
    assert rows_by_group(build_leaderboard(recs), "detection")["anatomy"]["SR"] == 0.0
    assert rows_by_group(build_leaderboard(recs, parse="last_k"), "detection")["anatomy"]["SR"] == 100.0


def test_unknown_region_label() -> None:
    recs = make_records(50, region_label="spleen capsule")
    with pytest.raises(RecordError, match="'spleen capsule'.*--unknown-label others"):
        build_leaderboard(recs)
    result = build_leaderboard(recs, unknown_label="others")
    assert result["details"]["detection_regions"][0]["region"] == "Others @ CT (A)"
    assert result["detection"] == []


# ------------------------------------------------------------------------------------------------ T/L
def test_tl_row_example_e_merge_and_zero_success_drop() -> None:
    result = build_leaderboard(tl_records())
    (row,) = result["tl"]
    assert (row["group"], row["labels"], row["samples"]) == ("tl", 2, 150)  # pancreas (20) left out
    assert row["MAE"] == pytest.approx((5 * 100 + 10 * 50) / 150)  # 6.667, not the micro mean 6.09
    assert row["SR"] == pytest.approx((0.9 * 100 + 0.5 * 50) / 150 * 100)  # 76.67
    mre_a, mre_b = (5 / 30 + 5 / 20) / 2, (10 / 30 + 10 / 20) / 2
    assert row["MRE"] == pytest.approx((mre_a * 100 + mre_b * 50) / 150 * 100)
    assert row["MRE<0.1"] == pytest.approx(5 / 150 * 100)
    labels = {d["label"]: d for d in result["details"]["tl_labels"]}
    assert set(labels) == {"liver tumor @ CT (A)", "kidney tumor @ CT (A)", "pancreas cancer @ CT (A)"}
    assert labels["liver tumor @ CT (A)"]["samples"] == 100
    assert not labels["pancreas cancer @ CT (A)"]["in_row"]
    assert labels["pancreas cancer @ CT (A)"]["MAE"] is None
    assert [d["samples"] for d in result["details"]["tl_labels"]] == [100, 50, 20]  # sorted by N


def test_tl_region_fields_take_precedence_when_present() -> None:
    recs = make_records(
        3, family="tl", label_name="kidney tumor", region_label="liver cancer", region_modality="MRI"
    )
    result = build_leaderboard(recs)
    assert result["details"]["tl_labels"][0]["label"] == "liver tumor @ MR (A)"


def test_tl_row_without_successes_is_none() -> None:
    (row,) = build_leaderboard(make_records(4, family="tl", response=FAILURE))["tl"]
    assert (row["labels"], row["samples"], row["MAE"], row["SR"]) == (0, 0, None, None)


def test_tl_remove_multicluster() -> None:
    recs = make_records(6, family="tl", multicluster_listed=False, response="30, 20")
    recs += make_records(4, 6, family="tl", multicluster_listed=True, response="60, 40")
    (v1,) = build_leaderboard(recs)["tl"]
    assert (v1["samples"], v1["MAE"]) == (10, pytest.approx(4 * 25 / 10))  # (60, 40) vs (30, 20): MAE 25
    (removed,) = build_leaderboard(recs, tl_remove_multicluster=True)["tl"]
    assert (removed["samples"], removed["MAE"]) == (6, 0.0)
    (paper,) = build_leaderboard(recs, preset="paper")["tl"]
    assert paper["samples"] == 6


def test_tl_remove_multicluster_without_the_list_is_an_error() -> None:
    recs = make_records(3, family="tl", multicluster_listed=None)
    build_leaderboard(recs)  # fine while the switch is off
    with pytest.raises(
        RecordError, match="multicluster_listed' is null.*multi_cluster_samples_v1.0.0_to_v1.1.0"
    ):
        build_leaderboard(recs, preset="paper")


# ------------------------------------------------------------------------------------------------ A/D
def test_ad_rows_zero_success_label_stays_in_sr() -> None:
    result = build_leaderboard(ad_records())
    rows = rows_by_group(result, "ad")
    assert list(rows) == ["ceph_distance", "ceph_angle", "feta_distance", "ad_overall"]
    dist = rows["ceph_distance"]
    assert (dist["labels"], dist["samples"]) == (2, 150)
    assert dist["MAE"] == pytest.approx(5.0)  # Go-Me leaves MAE/MRE ...
    assert dist["MRE"] == pytest.approx(12.5)
    assert dist["SR"] == pytest.approx(90 / 150 * 100)  # ... but stays in SR (as 0) and in the samples
    assert dist["MRE<0.1"] == 0.0
    angle = rows["ceph_angle"]
    assert (angle["samples"], angle["SR"]) == (10, 100.0)
    assert angle["MAE"] == pytest.approx((3 * 0.95 + 7 * 2) / 10)
    feta = rows["feta_distance"]
    assert (feta["labels"], feta["samples"], feta["MAE"], feta["MRE<0.1"]) == (1, 3, 4.0, 100.0)
    assert rows["ad_overall"]["samples"] == 163
    labels = {d["label"]: d for d in result["details"]["ad_labels"]}
    assert not labels[f"{CEPH}_distance_Go-Me"]["in_error_means"]
    assert labels[f"{CEPH}_distance_Go-Me"]["SR"] == 0.0


def test_ad_drop_near_zero_and_presets() -> None:
    recs = ad_records()
    for kwargs in ({"ad_drop_near_zero": True}, {"preset": "paper"}):
        angle = rows_by_group(build_leaderboard(recs, **kwargs), "ad")["ceph_angle"]
        assert angle["samples"] == 7
        assert angle["MAE"] == pytest.approx(2.0)
        assert angle["MRE"] == pytest.approx(20.0)
    result = build_leaderboard(recs, preset="paper")
    assert result["options"]["ad_drop_near_zero"] is True
    assert result["options"]["tl_remove_multicluster"] is True
    v1 = build_leaderboard(recs, preset="v1")
    assert rows_by_group(v1, "ad")["ceph_angle"]["samples"] == 10


def test_recorded_ad_switch_is_used_by_default() -> None:
    recs = ad_records()
    for r in recs:
        r["settings"]["ad_drop_near_zero"] = 1
    assert rows_by_group(build_leaderboard(recs), "ad")["ceph_angle"]["samples"] == 7
    assert (
        rows_by_group(build_leaderboard(recs, ad_drop_near_zero=False), "ad")["ceph_angle"]["samples"] == 10
    )


# ------------------------------------------------------------------------------------------- hygiene
def test_identical_duplicates_are_counted_once(tmp_path: Path) -> None:
    """Identical reruns in one folder (e.g. a resumed run) count once; from two folders they are refused
    naming both files unless --last-wins (or --latest) is given."""
    recs = make_records(50, region_label="kidney")
    write_samples(tmp_path / "same" / "x_samples_medvision_detection.jsonl", recs)
    write_samples(tmp_path / "same" / "y_samples_medvision_detection.jsonl", recs)
    result = build_leaderboard(load_records([tmp_path / "same"]))
    assert rows_by_group(result, "detection")["anatomy"]["samples"] == 50
    assert any("50 duplicate record(s)" in w for w in result["warnings"])

    first = write_samples(tmp_path / "a" / "x_samples_medvision_detection.jsonl", recs)
    second = write_samples(tmp_path / "b" / "x_samples_medvision_detection.jsonl", recs)
    records = load_records([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(RecordError, match="the same records in 2 run folders") as info:
        build_leaderboard(records)
    assert str(first) in str(info.value) and str(second) in str(info.value)
    result = build_leaderboard(records, last_wins=True)
    assert rows_by_group(result, "detection")["anatomy"]["samples"] == 50


def test_conflicting_duplicates_list_the_files(tmp_path: Path) -> None:
    first = write_samples(
        tmp_path / "run1" / "a_samples_medvision_det.jsonl", make_records(50, region_label="kidney")
    )
    second = write_samples(
        tmp_path / "run2" / "a_samples_medvision_det.jsonl",
        make_records(50, region_label="kidney", response=FAILURE),
    )
    records = load_records([tmp_path])
    with pytest.raises(RecordError, match="conflicting responses") as info:
        build_leaderboard(records)
    assert str(first) in str(info.value) and str(second) in str(info.value)
    assert "--last-wins" in str(info.value)
    result = build_leaderboard(records, last_wins=True)
    assert rows_by_group(result, "detection")["anatomy"]["SR"] == 0.0  # the later run (run2) wins


def test_mixed_settings_are_refused() -> None:
    other = {**make_record()["settings"], "parse": "answer_tag", "intensity": "hu_window"}
    recs = make_records(2, region_label="kidney") + make_records(
        2, 2, region_label="kidney", settings=other, settings_id="settings0002"
    )
    with pytest.raises(RecordError, match="2 settings_ids.*intensity, parse.*not comparable.*--allow-mixed"):
        build_leaderboard(recs)
    result = build_leaderboard(recs, allow_mixed_settings=True)
    assert any("settings_ids" in w for w in result["warnings"])


def test_different_models_may_have_different_settings() -> None:
    recs = make_records(2, region_label="kidney") + make_records(
        2, region_label="kidney", adapter="medvision_random", settings_id="other"
    )
    result = build_leaderboard(recs)
    assert [r["model"] for r in result["detection"]] == ["medvision_v0_7b", "random"]


def test_demo_records_are_refused_without_the_flag() -> None:
    recs = make_records(3, region_label="kidney", data_root_kind="demo")
    with pytest.raises(RecordError, match="demo.*--allow-demo"):
        build_leaderboard(recs)
    result = build_leaderboard(recs, allow_demo=True)
    assert not any("paper reports" in w for w in result["warnings"])  # no N warning for demo records


def test_multi_instance_records_are_refused_without_the_flag() -> None:
    recs = make_records(3, region_label="kidney", multi_instance=True)
    with pytest.raises(RecordError, match="multi-instance.*--allow-multi-instance"):
        build_leaderboard(recs)
    assert build_leaderboard(recs, allow_multi_instance=True)["detection"]


def test_paper_n_warning_for_real_records() -> None:
    result = build_leaderboard(detection_records())
    assert any("anatomy: 50 samples, the paper reports 13400" in w for w in result["warnings"])


def test_paper_rows_follow_measured_rows() -> None:
    result = build_leaderboard(detection_records() + tl_records(), paper=True)
    assert [(r["group"], r["source"]) for r in result["detection"]] == [
        ("anatomy", "measured"),
        ("anatomy", "paper"),
        ("tumor_lesion", "measured"),
        ("tumor_lesion", "paper"),
    ]
    assert result["detection"][1]["IoU"] == 72.0
    assert [r["source"] for r in result["tl"]] == ["measured", "paper"]
    assert result["ad"] == []
    override = build_leaderboard(detection_records(), paper_model="lingshu_32b")
    assert override["detection"][1]["model"] == "lingshu_32b"
    none = build_leaderboard(make_records(50, region_label="kidney", adapter="medvision_random"), paper=True)
    assert [r["source"] for r in none["detection"]] == ["measured"]


def test_result_is_strict_json_with_none_for_nan() -> None:
    result = build_leaderboard(detection_records() + tl_records() + ad_records())
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text)["details"]["tl_labels"][-1]["MAE"] is None
    assert set(result) >= {"detection", "tl", "ad", "details", "options", "warnings"}
    assert set(result["details"]) == {"detection_regions", "tl_labels", "ad_labels"}


def test_option_validation() -> None:
    recs = make_records(1, region_label="kidney")
    with pytest.raises(ValueError, match="parse must be one of as-run, last_k, answer_tag"):
        build_leaderboard(recs, parse="first_k")
    with pytest.raises(ValueError, match="preset"):
        build_leaderboard(recs, preset="v2")


# ------------------------------------------------------------------------------------------ loading
def test_folder_without_samples_files_says_log_samples(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(
        RecordError,
        match=r"no \*_samples_medvision_\*\.jsonl files found; rerun lmms-eval with --log_samples",
    ):
        load_records([tmp_path])


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="no such file or folder"):
        load_records([tmp_path / "nope"])


def test_single_file_and_source_annotation(tmp_path: Path) -> None:
    path = write_samples(
        tmp_path / "2025_samples_medvision_demo.jsonl", make_records(2, region_label="kidney")
    )
    records = load_records([path, tmp_path])  # the same file twice is read once
    assert len(records) == 2
    assert records[1]["_source"] == f"{path}:2"


def test_line_without_mv_record_names_file_and_line(tmp_path: Path) -> None:
    path = write_samples(tmp_path / "x_samples_medvision_a.jsonl", [make_record()])
    with path.open("a") as handle:
        handle.write(json.dumps({"doc_id": 1, "resps": [["0.1"]]}) + "\n")
    with pytest.raises(RecordError, match=rf"{path}:2: no field 'mv_record'"):
        load_records([tmp_path])


def test_missing_field_and_other_schema(tmp_path: Path) -> None:
    broken = make_record()
    del broken["settings_id"]
    path = write_samples(tmp_path / "x_samples_medvision_a.jsonl", [broken])
    with pytest.raises(RecordError, match=rf"{path}:1: mv_record lacks field 'settings_id'"):
        load_records([path])
    write_samples(path, [make_record(), make_record(schema=2)])
    with pytest.raises(RecordError, match=rf"{path}:2: field 'schema' is 2"):
        load_records([path])
    write_samples(path, [make_record(target=[0.1, 0.2])])
    with pytest.raises(RecordError, match=r":1: field 'target' must be a list of 4 numbers"):
        load_records([path])


def test_invalid_json_line(tmp_path: Path) -> None:
    path = tmp_path / "x_samples_medvision_a.jsonl"
    path.write_text('{"mv_record": \n')
    with pytest.raises(RecordError, match=":1: not valid JSON"):
        load_records([path])
