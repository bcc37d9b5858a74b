"""--paper / --paper-model messages and the Table 4 near-zero note (issue 14)."""

from __future__ import annotations

import argparse

import pytest
from medvision_metrics.leaderboard import build_leaderboard
from medvision_metrics.leaderboard_cli import add_arguments, run
from medvision_metrics.paper_notes import near_zero_note, near_zero_share
from mv_records import ad_records, detection_records, make_records, write_samples


def _ok(mre: float) -> dict:
    return {"success": True, "excluded": False, "metrics": {"mre": mre}}


def test_near_zero_share_counts_only_samples_in_the_mre() -> None:
    pairs = [
        (0.05, _ok(19.0)),  # near zero: 19 of the summed 20
        (10.0, _ok(1.0)),
        (0.01, {"success": False, "excluded": False, "metrics": {"mre": float("nan")}}),  # failure: not in MRE
        (0.02, {"success": True, "excluded": True, "metrics": {"mre": 50.0}}),  # excluded: not in MRE
    ]
    assert near_zero_share(pairs, 0.1) == (1, 2, pytest.approx(0.95))
    assert "1 of 2 samples in the MRE have a GT angle below 0.1 degree and carry 95%" in near_zero_note(pairs, 0.1)
    assert near_zero_note([(0.05, _ok(1.0)), (10.0, _ok(3.0))], 0.1) is None  # 25 %: not dominant


def test_table4_note_under_v1_and_gone_under_paper_preset() -> None:
    # ad_records: 3 GT 0.05 answered 1 (RE 19 each), 7 GT 10 answered 12 (RE 0.2): 57 of 58.4 summed
    v1 = next(r for r in build_leaderboard(ad_records())["ad"] if r["group"] == "ceph_angle")
    assert "3 of 10 samples in the MRE have a GT angle below 0.1 degree and carry 98%" in v1["note"]
    assert "--preset paper" in v1["note"]
    paper = next(r for r in build_leaderboard(ad_records(), preset="paper")["ad"] if r["group"] == "ceph_angle")
    assert "note" not in paper


def test_paper_names_models_without_published_rows() -> None:
    records = detection_records() + make_records(60, model={"adapter": "medvision_random", "pretrained": None})
    result = build_leaderboard(records, paper=True)
    line = next(w for w in result["warnings"] if w.startswith("--paper:"))
    assert line.startswith("--paper: no published rows for random (the paper reports gemma3_27b,")
    assert "medvision_v0_7b" not in line.split("(")[0]
    assert not any(w.startswith("--paper:") for w in build_leaderboard(detection_records(), paper=True)["warnings"])


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))


def test_unknown_paper_model_is_an_error_listing_the_keys(tmp_path, capsys) -> None:
    write_samples(tmp_path / "run" / "20250101_000000_samples_medvision_det.jsonl", detection_records())
    assert _cli(str(tmp_path / "run"), "--paper-model", "qwen2_5_vl_7") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --paper-model 'qwen2_5_vl_7' is not valid; valid: medvision_v0_7b, lingshu_32b,")
    assert err.endswith("closest: 'qwen2_5_vl_7b'") and "\n" not in err
