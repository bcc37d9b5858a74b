"""Spacing sensitivity table: oracle and blind replays on the demo, pair accounting, intervals, formats.

Records are produced by the real hooks from demo rows, answered by the real `medvision_replay` adapter
from a responses JSONL keyed by task and row.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from medvision_metrics.leaderboard import build_leaderboard
from medvision_metrics.report import render
from medvision_metrics.spacing import elasticity

from medvision_tasks import hooks
from medvision_tasks.catalogue import YAML_DIR

BASES = {
    "tl": ["medvision_demo_tl_kits23_task01_axial"],
    "distance": [
        "medvision_demo_ad_cephbiometrics400_distance_task01_sagittal",
        "medvision_demo_ad_feta24_task01_sagittal",
        "medvision_demo_ad_feta24_task01_coronal",
        "medvision_demo_ad_feta24_task01_axial",
    ],
    "angle": ["medvision_demo_ad_cephbiometrics400_angle_task01_sagittal"],
}
KS = {"_k0p5": 0.5, "_k2": 2.0}


def _docs(task: str) -> list[dict]:
    (path,) = YAML_DIR.glob(f"*/stubs/{task}.jsonl")
    return hooks.build_rows(json.loads(path.read_text()))


def _answer(values: list[float]) -> str:
    return ", ".join(repr(float(v)) for v in values)


def _replay(tmp_path: Path, respond, groups=tuple(BASES), with_base: bool = True) -> list[dict]:
    """Write a responses JSONL with `respond(task, base_doc, doc) -> str`, replay it, return the records."""
    from medvision_adapters.baselines import ReplayModel

    tasks: list[tuple[str, str]] = []
    for group in groups:
        for base in BASES[group]:
            if with_base:
                tasks.append((base, base))
            tasks += [(base + suffix, base) for suffix in KS]
    lines = []
    docs: dict[str, list[dict]] = {}
    for task, base in tasks:
        docs[task] = _docs(task)
        base_docs = docs.get(base) or _docs(base)
        for doc, base_doc in zip(docs[task], base_docs):
            response = respond(task, base_doc, doc)
            line = {"task": task, "config": doc["mv_config"], "row": doc["mv_row"], "response": response}
            lines.append(json.dumps(line))
    path = tmp_path / "responses.jsonl"
    path.write_text("\n".join(lines) + "\n")
    model = ReplayModel(path=str(path))
    records = []
    for task, _ in tasks:
        for doc in _docs(task):
            response = model.respond(doc, "", {}, None)
            records.append(hooks.process_results(doc, [response])["mv_record"])
    return records


def oracle(task, base_doc, doc) -> str:
    return _answer(hooks.doc_to_target(doc))


def blind(task, base_doc, doc) -> str:
    return _answer(hooks.doc_to_target(base_doc))


def _rows(result: dict) -> dict[str, dict]:
    return {row["group"]: row for row in result["spacing"]["rows"]}


def _variant_count(group: str) -> int:
    return sum(len(_docs(base + suffix)) for base in BASES[group] for suffix in KS)


def test_elasticity_definition():
    assert elasticity(20.0, 10.0, 2.0) == 1.0 and elasticity(10.0, 10.0, 0.5) == 0.0
    assert elasticity(5.0, 10.0, 2.0) == -1.0


def test_oracle_replay_gives_elasticity_one_exactly(tmp_path):
    result = build_leaderboard(_replay(tmp_path, oracle), allow_demo=True)
    rows = _rows(result)
    assert set(rows) == {"tl", "distance", "angle"}
    for group in ("tl", "distance"):
        row = rows[group]
        assert row["model"] == "replay" and row["k"] == "0.5,2"
        assert row["e median"] == 1.0 and row["e IQR"] == 0.0 and row["e in [0.5,1.5] %"] == 100.0
        assert row["pairs"] == _variant_count(group) > 0
        assert row["unpaired"] == row["unparsable"] == row["skipped"] == 0
        assert row["MRE k=0.5"] == row["MRE k=1"] == row["MRE k=2"] == 0.0
        assert row["by_k"] == {"0.5": 1.0, "2": 1.0}
    assert rows["tl"]["minor e median"] == 1.0
    assert rows["distance"]["minor e median"] is None
    angle = rows["angle"]
    assert angle["angle |d| median"] == 0.0 and angle["e median"] is None
    assert angle["pairs"] == _variant_count("angle")
    assert result["spacing"]["missing_base"] == []


def test_blind_replay_gives_elasticity_zero(tmp_path):
    result = build_leaderboard(_replay(tmp_path, blind), allow_demo=True)
    rows = _rows(result)
    for group in ("tl", "distance"):
        assert rows[group]["e median"] == 0.0 and rows[group]["e IQR"] == 0.0
        assert rows[group]["e in [0.5,1.5] %"] == 0.0
        assert rows[group]["MRE k=1"] == 0.0 and rows[group]["MRE k=2"] > 0.0
    assert rows["tl"]["minor e median"] == 0.0
    assert rows["angle"]["angle |d| median"] == 0.0  # angles do not change with k: blind is right there


def test_half_unparsable_replay_counts_pairs(tmp_path):
    def half(task, base_doc, doc):
        if task not in (b for group in BASES.values() for b in group) and doc["mv_row"] % 2 == 0:
            return "I cannot tell."
        return oracle(task, base_doc, doc)

    rows = _rows(build_leaderboard(_replay(tmp_path, half), allow_demo=True))
    for group in BASES:
        docs = [d for base in BASES[group] for suffix in KS for d in _docs(base + suffix)]
        unparsable = sum(1 for d in docs if d["mv_row"] % 2 == 0)
        assert 0 < unparsable < len(docs)
        assert rows[group]["unparsable"] == unparsable
        assert rows[group]["pairs"] == len(docs) - unparsable
        assert rows[group]["unpaired"] == 0
    assert rows["tl"]["e median"] == 1.0


def test_zero_and_negative_answers_are_skipped_and_counted(tmp_path):
    def bad(task, base_doc, doc):
        if task.endswith("_k2") and doc["mv_row"] == 0:
            return "0, 3" if doc["mv_family"] == "tl" else "-4"
        return oracle(task, base_doc, doc)

    rows = _rows(build_leaderboard(_replay(tmp_path, bad, groups=("tl", "distance")), allow_demo=True))
    assert rows["tl"]["skipped"] == 1 and rows["tl"]["pairs"] == _variant_count("tl") - 1
    assert rows["distance"]["skipped"] == len(BASES["distance"])
    assert rows["tl"]["e median"] == 1.0


def test_base_records_of_other_settings_are_never_paired(tmp_path):
    records = _replay(tmp_path, oracle, groups=("tl",))
    for record in records:
        if "spacing" not in record and record["row"] % 2 == 1:
            record["settings_id"] = "other"
    result = build_leaderboard(records, allow_demo=True, allow_mixed=True)
    row = _rows(result)["tl"]
    odd = sum(1 for base in BASES["tl"] for s in KS for d in _docs(base + s) if d["mv_row"] % 2 == 1)
    assert row["unpaired"] == odd and row["pair_counts"]["unpaired_settings"] == odd
    assert row["pairs"] == _variant_count("tl") - odd


def test_missing_base_records_name_the_subtasks_to_run(tmp_path):
    records = _replay(tmp_path, oracle, groups=("tl", "angle"), with_base=False)
    result = build_leaderboard(records, allow_demo=True)
    assert result["tl"] == [] and result["ad"] == []  # variants never enter Tables 3-4
    rows = _rows(result)
    assert rows["tl"]["pairs"] == 0 and rows["tl"]["unpaired"] == _variant_count("tl")
    assert rows["tl"]["e median"] is None and rows["tl"]["MRE k=2"] == 0.0
    missing = {m["base_task"] for m in result["spacing"]["missing_base"]}
    assert missing == {BASES["tl"][0], BASES["angle"][0]}
    text = render(result, "text")
    assert "Spacing sensitivity" in text
    assert f"replay: no base-task records to pair with; run {BASES['angle'][0]}, {BASES['tl'][0]}" in text


def test_variant_records_leave_tables_3_and_4_unchanged(tmp_path):
    records = _replay(tmp_path, blind)
    alone = build_leaderboard([r for r in records if "spacing" not in r], allow_demo=True)
    both = build_leaderboard(records, allow_demo=True)
    assert "spacing" not in alone
    for table in ("detection", "tl", "ad"):
        assert both[table] == alone[table]
    assert both["details"] == alone["details"]


def test_ci_gives_volume_clustered_intervals_in_every_format(tmp_path):
    records = _replay(tmp_path, blind)
    result = build_leaderboard(records, allow_demo=True, ci=0.9, ci_iterations=50)
    rows = _rows(result)
    tl = rows["tl"]
    volumes = {r["image_file_rel"] for r in records if r["task"] == BASES["tl"][0] + "_k2"}
    assert tl["clusters"] == len(volumes) > 1
    assert tl["ci"]["e median"] == [0.0, 0.0] and tl["ci"]["minor e median"] == [0.0, 0.0]
    assert rows["angle"]["ci"]["angle |d| median"] == [0.0, 0.0] and rows["angle"]["ci"]["e median"] is None
    text = render(result, "text")
    assert "Spacing sensitivity" in text and "0.00 [0.00, 0.00]" in text
    md = render(result, "md")
    assert "### Spacing sensitivity" in md and "| e median |" in md
    latex = render(result, "latex")
    assert "\\caption{Spacing sensitivity}" in latex
    data = json.loads(render(result, "json"))
    assert data["spacing"]["rows"][0]["ci"]["e median"] == [0.0, 0.0]
    parsed = [r for r in csv.DictReader(io.StringIO(render(result, "csv"))) if r["table"] == "Spacing sensitivity"]
    assert {r["group"] for r in parsed} == {"tl", "distance", "angle"}
    assert parsed[0]["e median_ci_low"] == "0.00" and parsed[0]["pairs"] == str(tl["pairs"])


def test_a_malformed_spacing_field_names_the_record(tmp_path):
    from medvision_metrics.errors import RecordError

    records = _replay(tmp_path, oracle, groups=("angle",))
    variant = next(r for r in records if "spacing" in r)
    variant["spacing"] = {"k": -1, "base_task": BASES["angle"][0]}
    with pytest.raises(RecordError, match=r"field 'spacing.k' is -1"):
        build_leaderboard(records, allow_demo=True)


def test_out_folder_gets_the_spacing_csv(tmp_path):
    from medvision_metrics.leaderboard_cli import write_outputs

    result = build_leaderboard(_replay(tmp_path, oracle, groups=("distance",)), allow_demo=True)
    written = write_outputs(result, tmp_path / "out")
    path = tmp_path / "out" / "spacing_sensitivity.csv"
    assert path in written
    lines = path.read_text().splitlines()
    assert lines[0].startswith("table,model,group,k,pairs,unpaired")
    assert lines[1].startswith("Spacing sensitivity,replay,distance,\"0.5,2\"")
    assert json.loads((tmp_path / "out" / "leaderboard.json").read_text())["spacing"]["rows"][0]["e median"] == 1.0
