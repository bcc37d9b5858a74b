"""lmms-eval hooks without a model: failures are data, geometry is required, records are JSON-safe."""

from __future__ import annotations

import json

import pytest

from medvision_tasks import hooks, settings
from medvision_tasks.errors import SettingsError
from medvision_tasks.prompts import MEDVISION_V0_SYSTEM_PROMPT  # noqa: F401  (module import check)

STUBS = {
    "detection": ("medvision_demo_detection_kits23_task01_axial", "KiTS23_BoxSize_Task01_Axial_Test"),
    "tl": ("medvision_demo_tl_kits23_task01_axial", "KiTS23_TumorLesionSize_Task01_Axial_Test"),
    "ad": (
        "medvision_demo_ad_cephbiometrics400_angle_task01_sagittal",
        "Ceph-Biometrics-400_BiometricsFromLandmarks_Angle_Task01_Sagittal_Test",
    ),
}


def demo_docs(family: str, variant: dict | None = None) -> list[dict]:
    task, config = STUBS[family]
    stub = {
        "mv_task": task,
        "mv_config": config,
        "mv_family": family,
        "mv_variant": variant or {"prompt_style": "v1"},
        "mv_data_root_kind": "demo",
    }
    return hooks.build_rows(stub)


@pytest.mark.parametrize("family", ["detection", "tl", "ad"])
@pytest.mark.parametrize("response", ["", None, "I cannot tell.", "<answer></answer>"])
def test_unparseable_responses_are_failures_not_crashes(family, response, monkeypatch):
    monkeypatch.setenv("MEDVISION_GEOMETRY", "native")
    doc = demo_docs(family)[0]
    out = hooks.process_results(doc, [response])
    rec = out["mv_record"]
    assert rec["success"] is False and rec["parsed"] is None
    assert out["success_rate"]["value"] == 0.0
    json.dumps(rec, allow_nan=False)  # NaN written as null
    if family == "detection":
        assert out["iou"]["value"] == 0.0 and out["mae_coord"]["value"] is None
    else:
        assert out["mae"]["value"] is None and out["mre_lt_010"]["value"] is None


def test_exact_answer_scores_perfectly(monkeypatch):
    monkeypatch.setenv("MEDVISION_GEOMETRY", "native")
    doc = demo_docs("tl")[0]
    major, minor = hooks.doc_to_target(doc)
    out = hooks.process_results(doc, [f"{major}, {minor}"])
    assert out["mae"]["value"] == 0.0 and out["mre_lt_010"]["value"] == 0.0 and out["success_rate"]["value"] == 1.0
    det = demo_docs("detection")[0]
    box = hooks.doc_to_target(det)
    assert hooks.process_results(det, [", ".join(map(str, box))])["iou"]["value"] == pytest.approx(1.0)


def test_stock_model_without_geometry_stops_before_requests():
    doc = demo_docs("tl")[0]
    with pytest.raises(SettingsError, match=r"MEDVISION_GEOMETRY.*'native'.*lmms_eval_specific_kwargs"):
        hooks.doc_to_text(doc)
    assert "bounding box" in hooks.doc_to_text(demo_docs("detection")[0])  # detection needs no geometry
    text = hooks.doc_to_text(doc, {"geometry": "fixed:size=896", "default": {}})
    assert "pixel size" in text


def test_geometry_from_active_adapter_and_record(monkeypatch):
    settings.register_active_model({"adapter": "medvision_x", "geometry": "qwen_smart_resize"}, {"reshape": 512})
    doc = demo_docs("tl")[0]
    _, geometry = hooks.prompt_and_geometry(doc)
    assert geometry["canvas"] == [504, 504] and geometry["input_hw"] == [512, 512]
    rec = hooks.process_results(doc, ["1, 2"])["mv_record"]
    assert rec["model"]["adapter"] == "medvision_x" and rec["settings"]["reshape"] == 512


def test_near_zero_angle_exclusion(monkeypatch, demo_manifest):
    monkeypatch.setenv("MEDVISION_GEOMETRY", "native")
    monkeypatch.setenv("MEDVISION_AD_DROP_NEAR_ZERO", "1")
    docs = demo_docs("ad")
    excluded = [d for d in docs if hooks.process_results(d, ["5"])["mv_record"]["excluded"]]
    assert [d["biometric_profile"]["metric_key"] for d in excluded] == [
        a["metric_key"] for a in demo_manifest["planted"]["near_zero_angles"]
    ]
