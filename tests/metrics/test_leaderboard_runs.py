"""Runs and hygiene: merging runs of one model, repeated runs (--latest, --last-wins), mixed annotation versions
or switches (--allow-mixed), and bad samples files (issue 5, docs/reference.md §6.1)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest
from medvision_metrics.errors import RecordError
from medvision_metrics.leaderboard import build_leaderboard, run_time
from medvision_metrics.leaderboard_cli import add_arguments, run
from medvision_metrics.records import load_records
from mv_records import FAILURE, HALF_BOX, SETTINGS_V1, make_record, make_records, write_samples

DET = "medvision_detection_test"


def rows(result: dict[str, Any], table: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["model"], r["group"]): r for r in result[table] if r["source"] == "measured"}


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))


# ------------------------------------------------------------------------------------------------ runs
def test_runs_of_one_model_merge_into_one_row(tmp_path: Path) -> None:
    write_samples(tmp_path / "det" / "20250101_100000_samples_medvision_det.jsonl", make_records(50))
    write_samples(
        tmp_path / "tl" / "20250102_100000_samples_medvision_tl.jsonl", make_records(4, family="tl", response="30, 20")
    )
    result = build_leaderboard(load_records([tmp_path]))
    assert [m["model"] for m in result["models"]] == ["medvision_v0_7b"]
    assert result["models"][0]["records_by_family"] == {"detection": 50, "tl": 4, "ad": 0}
    assert rows(result, "detection")[("medvision_v0_7b", "anatomy")]["samples"] == 50
    assert rows(result, "tl")[("medvision_v0_7b", "tl")]["MAE"] == 0.0
    assert not any("run" in w or "duplicate" in w for w in result["warnings"])


def test_repeated_run_with_other_responses_is_an_error(tmp_path: Path) -> None:
    old = write_samples(tmp_path / "a" / "20250101_100000_samples_medvision_det.jsonl", make_records(50))
    new = write_samples(
        tmp_path / "b" / "20250102_100000_samples_medvision_det.jsonl", make_records(50, response=FAILURE)
    )
    records = load_records([tmp_path])
    with pytest.raises(RecordError) as info:
        build_leaderboard(records)
    message = str(info.value)
    assert "1 model/task pair(s) were run more than once" in message
    assert f"model medvision_v0_7b task {DET}: 2 runs" in message
    assert "50 sample(s) with conflicting responses" in message and str(old) in message and str(new) in message
    assert "--latest" in message and "--last-wins" in message


def test_repeated_run_with_other_rows_is_an_error(tmp_path: Path) -> None:
    write_samples(tmp_path / "a" / "20250101_100000_samples_medvision_det.jsonl", make_records(10))
    write_samples(tmp_path / "b" / "20250102_100000_samples_medvision_det.jsonl", make_records(50))
    with pytest.raises(RecordError, match=r"40 sample\(s\) present in only some runs.*--latest"):
        build_leaderboard(load_records([tmp_path]))


def test_latest_keeps_the_newest_file_by_name_timestamp(tmp_path: Path) -> None:
    newer = write_samples(tmp_path / "a" / "20250102_100000_samples_medvision_det.jsonl", make_records(50))
    older = write_samples(
        tmp_path / "b" / "20250101_100000_samples_medvision_det.jsonl", make_records(60, response=FAILURE)
    )
    os.utime(newer, (1_000_000, 1_000_000))  # the name's timestamp wins over the modification time
    result = build_leaderboard(load_records([tmp_path]), latest=True)
    anatomy = rows(result, "detection")[("medvision_v0_7b", "anatomy")]
    assert (anatomy["samples"], anatomy["SR"]) == (50, 100.0)
    assert any(f"kept the newest run {newer}" in w and str(older) in w for w in result["warnings"])


def test_latest_falls_back_to_mtime_and_refuses_ties(tmp_path: Path) -> None:
    first = write_samples(tmp_path / "a" / "x_samples_medvision_det.jsonl", make_records(50))
    second = write_samples(tmp_path / "b" / "x_samples_medvision_det.jsonl", make_records(50, response=FAILURE))
    os.utime(first, (2_000_000, 2_000_000))
    os.utime(second, (1_000_000, 1_000_000))
    assert run_time(first) == 2_000_000 and run_time(second) == 1_000_000
    result = build_leaderboard(load_records([tmp_path]), latest=True)
    assert rows(result, "detection")[("medvision_v0_7b", "anatomy")]["SR"] == 100.0
    os.utime(second, (2_000_000, 2_000_000))
    with pytest.raises(RecordError, match="cannot tell the newest.*same timestamp"):
        build_leaderboard(load_records([tmp_path]), latest=True)


def test_latest_touches_only_repeated_model_task_pairs(tmp_path: Path) -> None:
    write_samples(tmp_path / "20250101_100000_samples_medvision_det_v0.jsonl", make_records(50, response=FAILURE))
    write_samples(tmp_path / "20250102_100000_samples_medvision_det_v0b.jsonl", make_records(50))
    random = make_records(50, adapter="medvision_random", response=HALF_BOX, settings_id="r")
    write_samples(tmp_path / "20240101_100000_samples_medvision_det_random.jsonl", random)
    result = build_leaderboard(load_records([tmp_path]), latest=True)
    table = rows(result, "detection")
    assert table[("medvision_v0_7b", "anatomy")]["SR"] == 100.0
    assert table[("random", "anatomy")]["IoU"] == 50.0  # the random model's only run is kept, however old


def test_last_wins_still_merges_per_sample(tmp_path: Path) -> None:
    write_samples(tmp_path / "a" / "20250101_100000_samples_medvision_det.jsonl", make_records(50))
    write_samples(
        tmp_path / "b" / "20250102_100000_samples_medvision_det.jsonl", make_records(10, response=FAILURE)
    )
    result = build_leaderboard(load_records([tmp_path]), last_wins=True)
    anatomy = rows(result, "detection")[("medvision_v0_7b", "anatomy")]
    assert (anatomy["samples"], anatomy["SR"]) == (50, 80.0)  # rows 0-9 replaced, 10-49 kept from the first run
    assert any("10 conflicting record(s) were replaced" in w for w in result["warnings"])


def test_cli_latest_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_samples(tmp_path / "20250101_100000_samples_medvision_det.jsonl", make_records(50, response=FAILURE))
    write_samples(tmp_path / "20250102_100000_samples_medvision_det2.jsonl", make_records(50))
    assert cli(str(tmp_path), "--format", "json") == 2
    assert "--latest" in capsys.readouterr().err
    assert cli(str(tmp_path), "--format", "json", "--latest") == 0
    assert json.loads(capsys.readouterr().out)["detection"][0]["SR"] == 100.0


# ------------------------------------------------------------------------------------------- mixing
def test_mixed_annotation_versions_in_one_table_are_refused() -> None:
    recs = make_records(50, plan_version="1.0.0") + make_records(
        50, adapter="medvision_random", settings_id="r", plan_version="1.1.0"
    )
    with pytest.raises(RecordError) as info:
        build_leaderboard(recs)
    message = str(info.value)
    assert "table detection mixes annotation versions (plan_version) of KiTS23" in message
    assert '"1.0.0" (model medvision_v0_7b; e.g. record 0)' in message and '"1.1.0" (model random' in message
    assert "--allow-mixed" in message
    accepted = build_leaderboard(recs, allow_mixed=True)
    assert any("mixed settings accepted (--allow-mixed)" in w for w in accepted["warnings"])


def test_datasets_may_come_from_different_annotation_versions() -> None:
    # e.g. MedVision_PLANNER_VERSION=latest: each dataset at its newest plan, the same for every model
    recs = make_records(50, plan_version="1.0.0") + make_records(50, dataset="LiTS", plan_version="1.1.0")
    recs += make_records(50, adapter="medvision_random", settings_id="r", plan_version="1.0.0")
    recs += make_records(50, dataset="LiTS", adapter="medvision_random", settings_id="r", plan_version="1.1.0")
    assert len(build_leaderboard(recs)["detection"]) == 2


def test_mixed_intensity_across_models_is_refused_but_prompt_settings_may_differ() -> None:
    hu = {**SETTINGS_V1, "intensity": "hu_window"}
    recs = make_records(50) + make_records(50, adapter="medvision_random", settings=hu, settings_id="r")
    with pytest.raises(RecordError, match=r'table detection mixes intensity: "minmax".*"hu_window"'):
        build_leaderboard(recs)
    cot = {**SETTINGS_V1, "parse": "answer_tag", "prompt_style": "cot", "reshape": 512}
    recs = make_records(50) + make_records(
        50, adapter="medvision_random", settings=cot, settings_id="r", response="<answer>0.25,0.25,0.75,0.75</answer>"
    )
    assert len(build_leaderboard(recs)["detection"]) == 2  # model defaults (prompt, parse, reshape) may differ


def test_mixed_effective_switch_is_refused_unless_overridden() -> None:
    fixed = {**SETTINGS_V1, "box_fix": 1}
    recs = make_records(50) + make_records(50, adapter="medvision_random", settings=fixed, settings_id="r")
    with pytest.raises(RecordError, match="table detection mixes box_fix: false .* vs true"):
        build_leaderboard(recs)
    assert len(build_leaderboard(recs, box_fix=True)["detection"]) == 2  # one switch for the whole table


def test_switch_of_another_family_does_not_mix_a_table() -> None:
    fixed = {**SETTINGS_V1, "ad_drop_near_zero": 1}
    recs = make_records(50) + make_records(50, adapter="medvision_random", settings=fixed, settings_id="r")
    assert len(build_leaderboard(recs)["detection"]) == 2  # ad_drop_near_zero is an A/D switch


def test_allow_mixed_settings_alias() -> None:
    other = {**SETTINGS_V1, "intensity": "hu_window"}
    recs = make_records(2) + make_records(2, 2, settings=other, settings_id="s2")
    with pytest.raises(RecordError, match="2 settings_ids"):
        build_leaderboard(recs)
    assert build_leaderboard(recs, allow_mixed_settings=True)["detection"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["x", "--allow-mixed-settings"]).allow_mixed is True
    assert parser.parse_args(["x", "--allow-mixed"]).allow_mixed is True


# ---------------------------------------------------------------------------------------- bad input
def test_run_folder_without_samples_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "20250101_100000_results.json").write_text("{}")
    assert cli(str(tmp_path)) == 2
    captured = capsys.readouterr()
    assert "rerun lmms-eval with --log_samples" in captured.err and captured.out == ""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": 2, "plugin_version": "0.3.0"}, r"field 'schema' is 2 \(written by plugin 0.3.0\).*reads schema 1"),
        ({"task": None}, r"field 'task' must be a non-empty string, got None"),
        ({"response": ["a"]}, r"field 'response' must be a string, got list"),
        ({"model": {"adapter": ""}}, r"field 'model.adapter' is missing"),
    ],
)
def test_bad_fields_name_file_line_and_field(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    path = write_samples(tmp_path / "x_samples_medvision_a.jsonl", [make_record(), make_record(row=1, **change)])
    with pytest.raises(RecordError, match=rf"{path}:2: {message}"):
        load_records([path])


def test_missing_field_names_file_line_field_and_fix(tmp_path: Path) -> None:
    broken = make_record()
    del broken["region_label"]
    path = write_samples(tmp_path / "x_samples_medvision_a.jsonl", [broken])
    with pytest.raises(RecordError, match=rf"{path}:1: mv_record lacks field 'region_label'.*rerun the task"):
        load_records([path])


def test_one_bad_file_gives_no_partial_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_samples(tmp_path / "a_samples_medvision_good.jsonl", make_records(50))
    write_samples(tmp_path / "b_samples_medvision_bad.jsonl", [make_record(row=99, schema=7)])
    assert cli(str(tmp_path), "--out", str(tmp_path / "out")) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "b_samples_medvision_bad.jsonl:1: field 'schema' is 7" in captured.err
    assert not (tmp_path / "out").exists()


def test_samples_line_decoding(tmp_path: Path) -> None:
    tricky = make_record(response='He said "mv_record": {"schema": 9} and 0.25, 0.25, 0.75, 0.75')
    path = tmp_path / "x_samples_medvision_a.jsonl"
    lines = [
        json.dumps({"doc_id": 0, "resps": [[tricky["response"]]], "mv_record": tricky, "input": "prompt"}),
        json.dumps({"mv_record": make_record(row=1)}, separators=(",", ":")),  # other separators: full decode
        json.dumps({"doc_id": 2, "mv_record": make_record(row=2), "input": "p"})[:-30],  # truncated line
    ]
    path.write_text("\n".join(lines[:2]) + "\n")
    records = load_records([path])
    assert [r["row"] for r in records] == [0, 1] and records[0]["response"] == tricky["response"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordError, match=rf"{path}:3: not valid JSON"):
        load_records([path])


def test_newer_plugin_version_is_flagged() -> None:
    result = build_leaderboard(make_records(50, plugin_version="99.0.0"))
    assert any("written by plugin 99.0.0, newer than this leaderboard" in w for w in result["warnings"])
    assert not any("newer" in w for w in build_leaderboard(make_records(50))["warnings"])
