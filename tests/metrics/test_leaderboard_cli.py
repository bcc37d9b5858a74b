"""``medvision-eval leaderboard`` argument handling, outputs and error exit."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from medvision_metrics.leaderboard_cli import add_arguments, run
from mv_records import make_records, write_samples

OUT_FILES = {
    "leaderboard.json",
    "leaderboard.html",
    "table2_detection.csv",
    "table3_tl.csv",
    "table4_ad.csv",
    "per_region_detection.json",
    "per_label_tl.json",
    "per_label_ad.json",
}


def parse_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults() -> None:
    args = parse_args("runs")
    assert args.paths == ["runs"] and args.format == "text" and args.parse == "as-run"
    assert (args.box_fix, args.ad_drop_near_zero, args.tl_remove_multicluster) == (None, None, None)
    assert (args.preset, args.min_group_size, args.unknown_label) == ("v1", None, "error")
    assert parse_args("runs", "--box-fix").box_fix is True


def test_run_writes_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_samples(
        tmp_path / "run" / "2025_samples_medvision_det.jsonl", make_records(3, region_label="kidney")
    )
    out = tmp_path / "out"
    code = run(
        parse_args(str(tmp_path / "run"), "--format", "json", "--out", str(out), "--min-group-size", "1")
    )
    assert code == 0
    stdout = json.loads(capsys.readouterr().out)
    assert stdout["detection"][0]["samples"] == 3
    assert {p.name for p in out.iterdir()} == OUT_FILES
    assert json.loads((out / "leaderboard.json").read_text())["options"]["min_group_size"] == 1
    assert json.loads((out / "per_region_detection.json").read_text())[0]["region"] == "Kidney @ CT (A)"


def test_preset_and_detail_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_samples(
        tmp_path / "a_samples_medvision_ad.jsonl",
        make_records(2, family="ad", metric_type="angle", metric_key="ANB", target=[0.05]),
    )
    assert run(parse_args(str(tmp_path), "--preset", "paper", "--detail")) == 0
    text = capsys.readouterr().out
    assert "Per-label A/D" in text


def test_record_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse_args(str(tmp_path))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--log_samples" in err


def test_demo_refusal_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_samples(tmp_path / "d_samples_medvision_demo.jsonl", make_records(2, data_root_kind="demo"))
    assert run(parse_args(str(tmp_path))) == 2
    assert "--allow-demo" in capsys.readouterr().err
    assert run(parse_args(str(tmp_path), "--allow-demo")) == 0
