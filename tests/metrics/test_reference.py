"""docs/reference.md §8 paper CSVs and the §7.3 model_key mapping."""

from __future__ import annotations

import pytest
from medvision_metrics.reference import load_paper_table, model_key_for, paper_model_keys, paper_rows

MODEL_KEYS = {
    "medvision_v0_7b", "lingshu_32b", "medgemma_27b", "medgemma_4b", "qwen2_5_vl_32b", "qwen2_5_vl_7b",
    "llava_onevision_72b", "internvl3_38b", "gemma3_27b", "healthgpt_l14", "meddr_40b",
    "huatuogpt_vision_34b", "llama3_2_vision_11b",
}  # fmt: skip


@pytest.mark.parametrize("table", ["detection", "tl", "ad"])
def test_csvs_parse_with_13_models(table: str) -> None:
    rows = load_paper_table(table)
    assert len(rows) == 13
    assert {r["model_key"] for r in rows} == MODEL_KEYS
    for row in rows:
        numbers = [v for k, v in row.items() if k not in ("model_key", "paper_name", "params")]
        assert numbers and all(isinstance(v, float) for v in numbers)


def test_spot_values_match_section_8() -> None:
    det = {r["model_key"]: r for r in load_paper_table("detection")}
    assert det["medvision_v0_7b"]["anatomy_iou_pct"] == 72.0
    assert det["llama3_2_vision_11b"]["tumor_lesion_success_rate_pct"] == 68.6
    tl = {r["model_key"]: r for r in load_paper_table("tl")}
    assert tl["medgemma_4b"]["mre_pct"] == 2293400.0
    ad = {r["model_key"]: r for r in load_paper_table("ad")}
    assert ad["medvision_v0_7b"]["ceph_angle_mae_deg"] == 4.7
    assert ad["qwen2_5_vl_7b"]["feta24_distance_mre_pct"] == 45568.5
    assert paper_model_keys()[0] == "medvision_v0_7b"


def test_paper_rows_in_leaderboard_form() -> None:
    rows = paper_rows("medvision_v0_7b")
    anatomy = rows["detection"][0]
    assert anatomy["group"] == "anatomy" and anatomy["source"] == "paper"
    assert (anatomy["R"], anatomy["IoU>0.5"], anatomy["regions"], anatomy["samples"]) == (
        81.3,
        80.1,
        18,
        13400,
    )
    assert [r["group"] for r in rows["ad"]] == ["ceph_distance", "ceph_angle", "feta_distance"]
    assert rows["ad"][1]["samples"] == 957
    assert rows["tl"][0]["MAE"] == 10.5
    assert "note" in paper_rows("medgemma_27b")["detection"][0]
    assert paper_rows("random") == {"detection": [], "tl": [], "ad": []}


@pytest.mark.parametrize(
    ("adapter", "pretrained", "key"),
    [
        ("medvision_v0", None, "medvision_v0_7b"),
        ("medvision_v0", "YongchengYAO/MedVision-V0-7B", "medvision_v0_7b"),
        ("medvision_lingshu", "lingshu-medical-mllm/Lingshu-32B", "lingshu_32b"),
        ("medvision_medgemma", None, "medgemma_4b"),
        ("medvision_medgemma", "google/medgemma-27b-it", "medgemma_27b"),
        ("medvision_medgemma", "/models/medgemma-4b-it/", "medgemma_4b"),
        ("medvision_qwen2_5_vl", "Qwen/Qwen2.5-VL-32B-Instruct", "qwen2_5_vl_32b"),
        ("medvision_qwen2_5_vl", "Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl_7b"),
        ("medvision_llava_onevision", None, "llava_onevision_72b"),
        ("medvision_internvl3", "OpenGVLab/InternVL3-38B", "internvl3_38b"),
        ("medvision_gemma3", "google/gemma-3-27b-it", "gemma3_27b"),
        ("medvision_healthgpt", None, "healthgpt_l14"),
        ("medvision_meddr", "Sunanhe/MedDr_0401", "meddr_40b"),
        ("medvision_huatuogpt_vision", "FreedomIntelligence/HuatuoGPT-Vision-34B", "huatuogpt_vision_34b"),
        ("medvision_llama3_2_vision", "meta-llama/Llama-3.2-11B-Vision-Instruct", "llama3_2_vision_11b"),
        ("medvision_random", None, "random"),
        ("medvision_prior", "anything", "prior"),
        ("medvision_replay", None, "replay"),
        (
            "medvision_qwen2_5_vl",
            "YongchengYAO/MedVision__SFT-m__qwen25vl-7b__detect",
            "medvision_qwen2_5_vl:MedVision__SFT-m__qwen25vl-7b__detect",
        ),
        ("qwen2_5_vl", "Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl:Qwen2.5-VL-7B-Instruct"),
        ("qwen2_5_vl", None, "qwen2_5_vl"),
    ],
)
def test_model_key_for(adapter: str, pretrained: str | None, key: str) -> None:
    assert model_key_for(adapter, pretrained) == key
