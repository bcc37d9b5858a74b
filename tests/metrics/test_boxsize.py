"""--boxsize (docs/reference.md §6.6): GT box area from the record, 5% bins, the seeded random-box reference, CSV and
plot."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from medvision_metrics.boxsize import bin_labels, box_bin, gt_box_dimensions, random_box_scores
from medvision_metrics.errors import RecordError
from medvision_metrics.leaderboard import build_leaderboard
from medvision_metrics.leaderboard_cli import add_arguments, run
from medvision_metrics.scores import detection_target
from mv_records import FAILURE, make_record, write_samples

H = W = 100


def box_record(row: int, rows_px: int, cols_px: int, response: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """A GT box of rows_px x cols_px pixels (dimensions = max - min + 1) in a 100 x 100 slice; the answer is the
    GT itself unless given."""
    target = detection_target((H, W), (0, 0), (rows_px - 1, cols_px - 1))
    answer = response if response is not None else ", ".join(repr(v) for v in target)
    return make_record(row=row, target=target, response=answer, **{"image_size_2d": [H, W], **kwargs})


def test_bin_labels() -> None:
    labels = bin_labels()
    assert len(labels) == 19
    assert labels[:3] == ["<5%", "5–10%", "10–15%"] and labels[-2:] == ["85–90%", "≥90%"]


def test_dimensions_from_the_target_spec_example() -> None:
    # docs/reference.md §5.1: H = W = 512, min (100, 200), max (180, 300); dimensions = max - min + 1 = (81, 101)
    target = [0.390625, 0.6484375, 0.5859375, 0.8046875]
    assert gt_box_dimensions(target, (512, 512)) == (81, 101)
    assert gt_box_dimensions(detection_target((333, 517), (7, 11), (290, 402)), (333, 517)) == (284, 392)
    with pytest.raises(ValueError, match="whole pixels"):
        gt_box_dimensions([0.1234, 0.2, 0.5, 0.6], (100, 100))


@pytest.mark.parametrize(
    ("dimensions", "expected"),
    [
        ((7, 7), 0),  # 49 / 10000 = 0.49%: <5%
        ((5, 100), 1),  # 5% exactly: 5-10% (integer arithmetic, no float edge)
        ((30, 30), 1),  # 9%
        ((10, 100), 2),  # 10% exactly: 10-15%
        ((89, 100), 17),  # 89%: 85-90%
        ((90, 100), 18),  # 90% exactly: >=90%
        ((100, 100), 18),  # the whole slice
    ],
)
def test_box_bin_edges_in_integers(dimensions: tuple[int, int], expected: int) -> None:
    assert box_bin(dimensions, (H, W)) == expected


def test_random_box_reference_is_seeded_and_matches_expectation() -> None:
    targets = np.array([[0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.4, 0.5]])
    sizes = np.array([[4, 4], [10, 10]])
    first = random_box_scores(targets, sizes, seed=1024, draws=100)
    assert all(np.array_equal(first[k], random_box_scores(targets, sizes, seed=1024, draws=100)[k]) for k in first)
    assert not np.array_equal(first["iou"], random_box_scores(targets, sizes, seed=1, draws=100)["iou"])
    # whole-image GT: precision is always 1 and IoU = (w/W)(h/H), E[w/W] = (W + 1)/(2W) = 5/8 for W = 4
    many = random_box_scores(targets[:1], sizes[:1], seed=1024, draws=20000)
    assert many["precision"][0] == pytest.approx(1.0)
    assert many["iou"][0] == pytest.approx((5 / 8) ** 2, abs=0.01)
    assert many["recall"][0] == pytest.approx((5 / 8) ** 2, abs=0.01)


def test_boxsize_rows_per_bin_and_model() -> None:
    recs = [box_record(i, 10, 10) for i in range(10)]  # 1% -> <5%, exact answers
    recs += [box_record(10 + i, 50, 50, response=FAILURE) for i in range(4)]  # 25% -> 25-30%, failures
    other = [box_record(i, 10, 10, adapter="medvision_random", settings_id="r") for i in range(10)]
    result = build_leaderboard(recs + other, boxsize=True, min_group_size=1)
    box = result["boxsize"]
    assert (box["seed"], box["draws"]) == (1024, 100)
    table = {(r["bin"], r["model"]): r for r in box["rows"]}
    assert set(table) == {
        ("<5%", "medvision_v0_7b"), ("<5%", "random"), ("<5%", "random_box"),
        ("25–30%", "medvision_v0_7b"), ("25–30%", "random_box"),
    }  # fmt: skip
    exact = table[("<5%", "medvision_v0_7b")]
    assert (exact["samples"], exact["SR"], exact["ratio_low_pct"], exact["ratio_high_pct"]) == (10, 100.0, 0, 5)
    assert exact["IoU"] == pytest.approx(100.0, abs=1e-3)  # answers are float32-rounded by the parser
    assert table[("25–30%", "medvision_v0_7b")]["SR"] == 0.0
    reference = table[("<5%", "random_box")]
    assert reference["samples"] == 10  # distinct GT samples (config, row), not one per model
    assert reference["source"] == "random_box" and reference["SR"] == 100.0
    assert 0.0 < reference["IoU"] < table[("25–30%", "random_box")]["IoU"] < 100.0  # bigger boxes, easier hits
    assert [r["bin_index"] for r in box["rows"]] == sorted(r["bin_index"] for r in box["rows"])


def test_boxsize_needs_image_size() -> None:
    bad = box_record(0, 10, 10, image_size_2d=None)
    build_leaderboard([bad], min_group_size=1)
    with pytest.raises(RecordError, match=r"record 0: field 'image_size_2d' must be \[H, W\]"):
        build_leaderboard([bad], boxsize=True)


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))


def test_cli_boxsize_writes_csv_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    write_samples(tmp_path / "run" / "x_samples_medvision_det.jsonl", [box_record(i, 10 + i, 12) for i in range(30)])
    assert cli(str(tmp_path / "run"), "--boxsize", "--boxsize-draws", "20") == 0
    captured = capsys.readouterr()
    assert "Box-size analysis - detection" in captured.out and "pass --out DIR" in captured.err
    out = tmp_path / "out"
    assert cli(str(tmp_path / "run"), "--boxsize", "--out", str(out), "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO((out / "boxsize_detection.csv").read_text(encoding="utf-8"))))
    assert {r["source"] for r in rows} == {"measured", "random_box"}
    assert list(rows[0])[:7] == ["bin", "bin_index", "ratio_low_pct", "ratio_high_pct", "model", "source", "samples"]
    assert (out / "boxsize_detection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
