"""Resolution and chain-of-thought variants at the hooks level (no model), and worked prompt examples.

Resolution variants (docs/reference.md §2.5) reshape the slice to N x N, state the rescaled spacing and keep the
targets; CoT variants (docs/reference.md §2.6) use the CoT prompt, parse inside <answer> and generate up to 4096 tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medvision_tasks import hooks
from medvision_tasks.catalogue import RESOLUTIONS, YAML_DIR
from medvision_tasks.geometry import parse_geometry, perceive, stated_pixel_size
from medvision_tasks.prompts import build_prompt

BASES = {
    "tl": "medvision_tl_kits23_task01_axial",
    "ad": "medvision_ad_cephbiometrics400_distance_task01_sagittal",
    "detection": "medvision_detection_kits23_task01_axial",
}


def _stub(task: str) -> dict[str, Any]:
    """The stub line of a generated subtask YAML."""
    (path,) = YAML_DIR.glob(f"*/stubs/{task}.jsonl")
    return json.loads(path.read_text())


@pytest.fixture()
def on_fixture_root(fixture_root: Path, monkeypatch) -> Path:
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(fixture_root))
    monkeypatch.setenv("MEDVISION_GEOMETRY", "native")
    return fixture_root


@pytest.mark.parametrize("family", ["tl", "ad"])
@pytest.mark.parametrize("size", RESOLUTIONS)
def test_resolution_variant_reshapes_and_states_rescaled_spacing(on_fixture_root, family, size):
    base = BASES[family]
    main_docs = hooks.build_rows(_stub(base))
    res_docs = hooks.build_rows(_stub(f"{base}_{size}"))
    assert len(res_docs) == len(main_docs)
    for main_doc, res_doc in zip(main_docs, res_docs):
        assert hooks.settings_for(res_doc).reshape == size
        assert hooks.doc_to_target(res_doc) == hooks.doc_to_target(main_doc)  # targets unchanged
        (main_image,) = hooks.doc_to_visual(main_doc)
        (res_image,) = hooks.doc_to_visual(res_doc)
        assert res_image.size == (size, size)
        _, main_record = hooks.prompt_and_geometry(main_doc)
        text, record = hooks.prompt_and_geometry(res_doc)
        h, w = main_record["input_hw"]
        assert main_image.size == (w, h)
        px_h, px_w = main_record["spacing_hw"]
        # The N x N slice has spacing (px_h * H / N, px_w * W / N); `native` states it unchanged.
        assert record["input_hw"] == [size, size]
        assert record["spacing_hw"] == pytest.approx([px_h * h / size, px_w * w / size])
        expected = f"{px_w * w / size:.3f} mm (width) x {px_h * h / size:.3f} mm (height)"
        assert expected in text


@pytest.mark.parametrize("size", RESOLUTIONS)
def test_resolution_variant_keeps_detection_targets(on_fixture_root, size):
    base = BASES["detection"]
    main_docs = hooks.build_rows(_stub(base))
    res_docs = hooks.build_rows(_stub(f"{base}_{size}"))
    assert [hooks.doc_to_target(d) for d in res_docs] == [hooks.doc_to_target(d) for d in main_docs]
    assert hooks.doc_to_text(res_docs[0]) == hooks.doc_to_text(main_docs[0])  # detection states no size
    assert hooks.doc_to_visual(res_docs[0])[0].size == (size, size)


def test_resolution_variant_with_a_processor_geometry(on_fixture_root, monkeypatch):
    """The model's rule applies to the N x N slice: Qwen sees 336 -> 336, Gemma 896; spacing from the resized size."""
    monkeypatch.setenv("MEDVISION_GEOMETRY", "fixed(896)")
    doc = hooks.build_rows(_stub(f"{BASES['tl']}_336"))[0]
    _, main_record = hooks.prompt_and_geometry(hooks.build_rows(_stub(BASES["tl"]))[0])
    text, record = hooks.prompt_and_geometry(doc)
    h, w = main_record["input_hw"]
    px_h, px_w = main_record["spacing_hw"]
    assert record["canvas"] == [896, 896]
    pw, ph = px_w * w / 896, px_h * h / 896  # (px * H / 336) * 336 / 896
    assert f"{pw:.3f} mm (width) x {ph:.3f} mm (height)" in text


@pytest.mark.parametrize("family", ["detection", "tl", "ad"])
def test_cot_variant_prompts_parses_answer_tag_and_keeps_targets(on_fixture_root, family):
    base = BASES[family]
    main_doc = hooks.build_rows(_stub(base))[0]
    cot_doc = hooks.build_rows(_stub(f"{base}_cot"))[0]
    cot_settings, main_settings = hooks.settings_for(cot_doc), hooks.settings_for(main_doc)
    assert (cot_settings.prompt_style, cot_settings.parse) == ("cot", "answer_tag")
    assert (main_settings.prompt_style, main_settings.parse) == ("v1", "last_k")
    assert hooks.doc_to_target(cot_doc) == hooks.doc_to_target(main_doc)
    text = hooks.doc_to_text(cot_doc)
    assert "<answer> </answer>" in text and text.endswith(
        "Follow the reasoning steps to get the final answer in the required format."
    )
    assert "Reasoning steps:" not in hooks.doc_to_text(main_doc)

    k = {"detection": 4, "tl": 2, "ad": 1}[family]
    answer = ", ".join(["0.25", "0.5", "0.75", "0.875"][:k])
    trailing = ", ".join(["9"] * k)
    response = f"<think>step results {trailing}</think> <answer>{answer}</answer> then {trailing}"
    cot = hooks.score_response(cot_doc, response, cot_settings)
    v1 = hooks.score_response(main_doc, response, main_settings)
    assert cot["success"] and cot["parsed"] == pytest.approx([float(x) for x in answer.split(", ")])
    assert v1["success"] and v1["parsed"] == pytest.approx([9.0] * k)  # last-k reads the trailing numbers
    untagged = hooks.score_response(cot_doc, answer, cot_settings)
    assert not untagged["success"]  # strict rule: nothing outside <answer> counts


def test_cot_templates_set_max_new_tokens_4096_and_v1_do_not():
    for family in ("detection", "tl", "ad"):
        cot = (YAML_DIR / f"_{family}_cot_yaml").read_text()
        v1 = (YAML_DIR / f"_{family}_v1_yaml").read_text()
        assert "generation_kwargs:\n  until: []\n  max_new_tokens: 4096\n" in cot
        assert "generation_kwargs:\n  until: []\nlmms_eval_specific_kwargs:" in v1
        assert "temperature" not in cot + v1


# ---------------------------------------------------------------------------- worked examples
TL_DOC = {
    "mv_family": "tl",
    "mv_image_description": "abdominal CT scan",
    "mv_label_name": "kidney tumor",
    "biometric_profile": {"metric_unit": ["mm"], "metric_value_major_axis": [30.0], "metric_value_minor_axis": [20.0]},
}
AD_DOC = {
    "mv_family": "ad",
    "mv_image_description": "cephalogram (head and neck X-ray)",
    "mv_ad_name": "",
    "mv_ad_points": ["sella", "nasion"],
    "mv_ad_lines": None,
    "biometric_profile": {"metric_type": "distance", "metric_unit": "mm", "metric_key": "L-1-2", "metric_value": 70.0},
}


def _worked(doc: dict, style: str, rule: str) -> str:
    """512 x 512 slice at 0.70 mm seen through `rule`."""
    perceived = perceive(parse_geometry(rule), 512, 512)
    pw, ph = stated_pixel_size((0.70, 0.70), (512, 512), perceived.content_hw)
    return build_prompt(doc, style, (pw, ph), (perceived.canvas_hw[1], perceived.canvas_hw[0]))


def test_worked_example_qwen_0711_tl_v1_full_text():
    # smart resize: 512/28 = 18.29 -> 18 -> 504; 0.70 * 512 / 504 = 0.7111 -> "0.711".
    assert _worked(TL_DOC, "v1", "qwen_smart_resize") == (
        "Task:\n"
        "Given the input medical image: abdominal CT scan, estimate the major and minor axis lengths of the "
        "ellipse enclosing the kidney tumor, in mm.\n"
        "Additional information:\n"
        "The pixel size for this image is 0.711 mm (width) x 0.711 mm (height).\n"
        "Format requirement:\n"
        "The answer should be two decimal numbers separated by a comma without any units or additional text. "
        "The first is the major axis length, and the second is the minor axis length."
    )


def test_worked_example_medgemma_0400_ad_v1_full_text():
    # fixed(896): 0.70 * 512 / 896 = 0.4 -> "0.400".
    assert _worked(AD_DOC, "v1", "fixed(896)") == (
        "Task:\n"
        "Given the input medical image: cephalogram (head and neck X-ray), estimate the distance between 2 "
        "landmark points in millimeters: (landmark 1) sella, (landmark 2) nasion.\n"
        "Additional information:\n"
        "The pixel size for this image is 0.400 mm (width) x 0.400 mm (height).\n"
        "Format requirement:\n"
        "The answer should be a single decimal number without any units or additional text."
    )


@pytest.mark.parametrize(
    ("rule", "size", "spacing"), [("qwen_smart_resize", 504, "0.711"), ("fixed(896)", 896, "0.400")]
)
def test_worked_examples_cot(rule, size, spacing):
    tl = _worked(TL_DOC, "cot", rule)
    assert f"The image size is {size} pixels (width) x {size} pixels (height).\n" in tl
    assert f"The pixel size for this image is {spacing} millimeters (width) x {spacing} millimeters (height).\n" in tl
    ad = _worked(AD_DOC, "cot", rule)
    assert f"The image size is {size} pixels (width) x {size} pixels (height).\n" in ad
    assert f"The pixel size for this image is {spacing} mm (width) x {spacing} mm (height).\n" in ad
