"""--ci: cluster bootstrap over volumes; the vectorised cells equal the leaderboard's; seeded; every format."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
import pytest
from medvision_metrics import bootstrap
from medvision_metrics import leaderboard as lb
from medvision_metrics.errors import RecordError
from medvision_metrics.report import render
from mv_records import EXACT_BOX, FAILURE, ad_records, detection_records, make_record, make_records, tl_records

CI = 0.95


def measured(result: dict[str, Any], table: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["model"], r["group"]): r for r in result[table] if r["source"] == "measured"}


def unit_weight_cells(records: list[dict[str, Any]], min_group_size: int = 50) -> dict[str, Any]:
    """Every cell recomputed by the bootstrap's vectorised code with all cluster weights 1."""
    opts = lb.LeaderboardOptions(min_group_size=min_group_size)
    families: dict[str, list[Any]] = {f: [] for f in lb.FAMILY_K}
    for index, record in enumerate(records):
        where = f"record {index}"
        families[record["family"]].append((record, lb._rescore(record, where, opts), where))
    inputs = {
        family: bootstrap.FamilySamples(
            keys=lb._family_keys(family, items, opts),
            samples=[s for _, s, _ in items],
            clusters=[lb.cluster_id(r, w) for r, _, w in items],
        )
        for family, items in families.items()
    }
    names = sorted({c for data in inputs.values() for c in data.clusters})
    index = {name: i for i, name in enumerate(names)}
    prepared = {family: bootstrap._prepare(family, data, index) for family, data in inputs.items()}
    cells, _ = bootstrap._evaluate(
        prepared, np.ones((1, len(names))), min_group_size, lb.detection_group, lb.ad_group, lb.AD_OVERALL_GROUP
    )
    return cells


def test_unit_weights_reproduce_every_observed_cell() -> None:
    # Example B/E-style sets: excluded regions, a region under the floor, the T/L zero-success drop and merge,
    # the A/D zero-success retention
    records = detection_records() + tl_records() + ad_records()
    result = lb.build_leaderboard(records)
    cells = unit_weight_cells(records)
    checked = 0
    for table, detail_table, key in (
        ("detection", "detection_regions", "region"),
        ("tl", "tl_labels", "label"),
        ("ad", "ad_labels", "label"),
    ):
        for row in result[table]:
            for (kind, group, column), values in cells[table].items():
                if kind == "row" and group == row["group"]:
                    expected = row[column]
                    assert (np.nan if expected is None else expected) == pytest.approx(values[0], nan_ok=True)
                    checked += 1
        for detail in result["details"][detail_table]:
            for (kind, name, column), values in cells[table].items():
                if kind == "detail" and name == detail[key]:
                    expected = detail[column]
                    assert (np.nan if expected is None else expected) == pytest.approx(values[0], nan_ok=True)
                    checked += 1
    assert checked == 111  # detection 5 regions x 7 + 2 rows x 7; T/L 3 x 6 + 4; A/D 4 x 6 + 4 rows x 4


def test_one_volume_gives_a_point_interval() -> None:
    # every replicate draws the only volume: each cell equals the observed value
    recs = make_records(40, region_label="kidney", image_file_rel="v.nii.gz") + make_records(
        20, 40, region_label="kidney", response=FAILURE, image_file_rel="v.nii.gz"
    )
    result = lb.build_leaderboard(recs, ci=CI, ci_iterations=50)
    row = measured(result, "detection")[("medvision_v0_7b", "anatomy")]
    assert row["clusters"] == 1 and result["ci"]["clusters"] == {"medvision_v0_7b": 1}
    for column in ("R", "P", "F1", "IoU", "SR", "IoU>0.5", "F1>0.5"):
        assert row["ci"][column] == pytest.approx([row[column], row[column]])


def test_whole_volumes_are_resampled_not_slices() -> None:
    # volume A: 50 exact answers, volume B: 50 failures. Volume resampling gives IoU 100, 50 or 0 (p = 1/4,
    # 1/2, 1/4), so the 95% interval is [0, 100]; resampling slices would give about [40, 60].
    recs = make_records(50, region_label="kidney", image_file_rel="a.nii.gz", response=EXACT_BOX)
    recs += make_records(50, 50, region_label="kidney", image_file_rel="b.nii.gz", response=FAILURE)
    row = measured(lb.build_leaderboard(recs, ci=CI), "detection")[("medvision_v0_7b", "anatomy")]
    assert row["IoU"] == 50.0 and row["clusters"] == 2
    assert row["ci"]["IoU"] == [0.0, 100.0]


def test_floor_is_reapplied_per_replicate_and_undefined_cells_have_no_interval() -> None:
    # 10 volumes of 5 slices: N = 50 exactly at the floor; a replicate drawing fewer slices drops the region
    recs = [r | {"image_file_rel": f"v{r['row'] // 5}.nii.gz"} for r in make_records(50, region_label="kidney")]
    row = measured(lb.build_leaderboard(recs, ci=CI, ci_iterations=200), "detection")[("medvision_v0_7b", "anatomy")]
    assert row["IoU"] == 100.0 and row["ci"]["IoU"] == [100.0, 100.0]
    small = lb.build_leaderboard(recs[:45], ci=CI, ci_iterations=200)  # 45 < 50: observed row undefined
    row = measured(small, "detection")[("medvision_v0_7b", "anatomy")]
    assert row["IoU"] is None and row["ci"]["IoU"] is None


def test_seeded_and_independent_per_model() -> None:
    recs = [
        make_record("tl", row=i, response=f"{30 + (i * 7) % 11}, {20 + (i * 5) % 9}", image_file_rel=f"v{i // 3}")
        for i in range(60)
    ]
    first = lb.build_leaderboard(recs, ci=CI, ci_seed=7)
    again = lb.build_leaderboard(recs, ci=CI, ci_seed=7)
    other = lb.build_leaderboard(recs, ci=CI, ci_seed=8)
    key = ("medvision_v0_7b", "tl")
    assert measured(first, "tl")[key]["ci"] == measured(again, "tl")[key]["ci"]
    assert measured(first, "tl")[key]["ci"] != measured(other, "tl")[key]["ci"]
    extra = make_records(10, family="tl", adapter="medvision_random", settings_id="r")
    with_more = lb.build_leaderboard(recs + extra, ci=CI, ci_seed=7)
    assert measured(with_more, "tl")[key]["ci"] == measured(first, "tl")[key]["ci"]
    lo, hi = measured(first, "tl")[key]["ci"]["MAE"]
    assert lo < measured(first, "tl")[key]["MAE"] < hi
    assert first["ci"] | {"clusters": None} == {
        "level": CI, "iterations": 1000, "seed": 7, "clusters": None, "cluster": "dataset + image_file_rel",
        "method": "percentile bootstrap (inverted CDF); whole volumes resampled with replacement, per model",
    }  # fmt: skip


def test_options_and_missing_image_file() -> None:
    recs = make_records(5, region_label="kidney")
    with pytest.raises(ValueError, match="strictly between 0 and 1, e.g. 0.95; got 95"):
        lb.build_leaderboard(recs, ci=95)
    with pytest.raises(ValueError, match="ci_iterations must be >= 2"):
        lb.build_leaderboard(recs, ci=CI, ci_iterations=1)
    recs[3]["image_file_rel"] = None
    lb.build_leaderboard(recs)  # fine without --ci
    with pytest.raises(RecordError, match=r"record 3: field 'image_file_rel' is None; --ci resamples whole volumes"):
        lb.build_leaderboard(recs, ci=CI)


@pytest.fixture(scope="module")
def with_ci() -> dict[str, Any]:
    recs = detection_records() + tl_records() + ad_records()
    recs = [r | {"image_file_rel": f"{r['family']}_{r['row'] // 3}.nii.gz"} for r in recs]
    return lb.build_leaderboard(recs, ci=CI, ci_iterations=200, paper=True)


def test_every_measured_cell_has_an_interval(with_ci: dict[str, Any]) -> None:
    for table, columns in (
        ("detection", ("R", "P", "F1", "IoU", "SR", "IoU>0.5", "F1>0.5")),
        ("tl", ("MAE", "MRE", "SR", "MRE<0.1")),
        ("ad", ("MAE", "MRE", "SR", "MRE<0.1")),
    ):
        for row in with_ci[table]:
            if row["source"] == "paper":
                assert "ci" not in row
                continue
            assert row["clusters"] > 0
            for column in columns:
                bounds = row["ci"][column]
                assert (bounds is None) == (row[column] is None), (table, row["group"], column)
    for detail in with_ci["details"]["tl_labels"]:
        assert set(detail["ci"]) == {"MAE", "MRE", "SR", "MRE<0.1", "MRE<0.2", "MRE<0.3"}


def test_intervals_in_every_format(with_ci: dict[str, Any]) -> None:
    row = measured(with_ci, "tl")[("medvision_v0_7b", "tl")]
    lo, hi = row["ci"]["MAE"]
    shown = f"{row['MAE']:.1f} [{lo:.1f}, {hi:.1f}]"
    text = render(with_ci, "text")
    assert shown in text and "clusters" in text and "95% percentile bootstrap intervals" in text
    assert shown in render(with_ci, "md")
    assert f"{row['MAE']:.1f} {{\\scriptsize [{lo:.1f}, {hi:.1f}]}}" in render(with_ci, "latex")
    table = list(csv.reader(io.StringIO(render(with_ci, "csv"))))
    header = next(r for r in table if "MAE_ci_low" in r)
    line = next(r for r in table[table.index(header) :] if r[1:3] == ["medvision_v0_7b", "tl"])  # after "table"
    assert line[header.index("MAE_ci_low")] == f"{lo:.1f}" and line[header.index("MAE_ci_high")] == f"{hi:.1f}"
    loaded = json.loads(render(with_ci, "json"))
    assert measured(loaded, "tl")[("medvision_v0_7b", "tl")]["ci"]["MAE"] == [lo, hi]
    detail = render(with_ci, "text", detail=True)
    region = with_ci["details"]["detection_regions"][0]
    assert f"{region['IoU']:.1f} [{region['ci']['IoU'][0]:.1f}, {region['ci']['IoU'][1]:.1f}]" in detail
