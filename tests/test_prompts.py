"""Golden-file tests for the v1 and CoT prompt templates (docs/reference.md §3.1-§3.4, §10 item 3).

The golden texts in tests/golden/prompts/ were assembled from the official template text with the numbers
worked out by hand below; they are compared byte for byte (no trailing newline).

Slice: 160 x 384 (H x W), header spacing (px_h, px_w) = (0.8, 0.7) mm.

| id          | geometry               | canvas Hc x Wc | content Hn x Wn | pw = 268.8/Wn | ph = 128/Hn |
|-------------|------------------------|----------------|-----------------|---------------|-------------|
| qwen        | qwen_smart_resize      | 168 x 392      | 168 x 392       | 0.686         | 0.762       |
| fixed896    | fixed(896)             | 896 x 896      | 896 x 896       | 0.300         | 0.143       |
| clip336_v1  | clip336_pad, fix=False | 336 x 336      | 336 x 336       | 0.800         | 0.381       |
| clip336_fix | clip336_pad, fix=True  | 336 x 336      | 140 x 336       | 0.800         | 0.914       |

(pw = 0.7*384/Wn, ph = 0.8*160/Hn.)
(smart resize: 160/28 = 5.71 -> 6 -> 168; 384/28 = 13.71 -> 14 -> 392. clip336: 160*336/384 = 140.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medvision_tasks.errors import SettingsError
from medvision_tasks.geometry import parse_geometry, perceive, stated_pixel_size
from medvision_tasks.prompts import MEDVISION_V0_SYSTEM_PROMPT, build_prompt, prompt_sha1

GOLDEN_DIR = Path(__file__).parent / "golden" / "prompts"

SLICE_HW = (160, 384)
SPACING_HW = (0.8, 0.7)
GEOMETRIES = {
    "qwen": ("qwen_smart_resize", False),
    "fixed896": ("fixed(896)", False),
    "clip336_v1": ("clip336_pad", False),
    "clip336_fix": ("clip336_pad", True),
}

CEPH_DESCRIPTION = "cephalogram (head and neck X-ray)"
DOCS: dict[str, dict] = {
    "detection": {
        "mv_family": "detection",
        "mv_image_description": "abdomen CT scan",
        "mv_label_name": "left kidney",
    },
    "detection_empty_description": {
        "mv_family": "detection",
        "mv_image_description": "",
        "mv_label_name": "left kidney",
    },
    "tl": {
        "mv_family": "tl",
        "mv_image_description": "abdomen CT scan",
        "mv_label_name": "kidney tumor",
        "biometric_profile": {
            "metric_unit": ["mm"],
            "metric_value_major_axis": [31.5],
            "metric_value_minor_axis": [20.25],
        },
    },
    "ad_distance_named": {
        "mv_family": "ad",
        "mv_image_description": CEPH_DESCRIPTION,
        "mv_ad_name": "anterior cranial base length",
        "mv_ad_points": ["Sella", "Nasion"],
        "mv_ad_lines": None,
        "biometric_profile": {
            "metric_type": "distance",
            "metric_unit": "mm",
            "metric_key": "1",
            "metric_map_name": "lines_map",
            "metric_value": 70.5,
        },
    },
    "ad_distance_unnamed": {
        "mv_family": "ad",
        "mv_image_description": CEPH_DESCRIPTION,
        "mv_ad_name": "",
        "mv_ad_points": ["Sella", "Nasion"],
        "mv_ad_lines": None,
        "biometric_profile": {
            "metric_type": "distance",
            "metric_unit": "mm",
            "metric_key": "1",
            "metric_map_name": "lines_map",
            "metric_value": 70.5,
        },
    },
    "ad_angle_named": {
        "mv_family": "ad",
        "mv_image_description": CEPH_DESCRIPTION,
        "mv_ad_name": "SNA angle",
        "mv_ad_points": None,
        "mv_ad_lines": [["Sella", "Nasion"], ["Nasion", "Subspinale"]],
        "biometric_profile": {
            "metric_type": "angle",
            "metric_unit": "degree",
            "metric_key": "1",
            "metric_map_name": "angles_map",
            "metric_value": 82.0,
        },
    },
    "ad_angle_unnamed": {
        "mv_family": "ad",
        "mv_image_description": CEPH_DESCRIPTION,
        "mv_ad_name": "",
        "mv_ad_points": None,
        "mv_ad_lines": [["Sella", "Nasion"], ["Nasion", "Subspinale"]],
        "biometric_profile": {
            "metric_type": "angle",
            "metric_unit": "degree",
            "metric_key": "1",
            "metric_map_name": "angles_map",
            "metric_value": 82.0,
        },
    },
    "feta_distance_empty_description": {
        "mv_family": "ad",
        "mv_image_description": "",
        "mv_ad_name": "corpus callosum length",
        "mv_ad_points": ["CC anterior", "CC posterior"],
        "mv_ad_lines": None,
        "biometric_profile": {
            "metric_type": "distance",
            "metric_unit": "mm",
            "metric_key": "1",
            "metric_map_name": "lines_map",
            "metric_value": 38.0,
        },
    },
}


def _cases() -> list:
    cases = []
    for doc_key in ("detection", "detection_empty_description"):
        for style in ("v1", "cot"):
            cases.append(pytest.param(doc_key, style, None, id=f"{doc_key}__{style}"))
    for doc_key in ("tl", "ad_distance_named"):
        for style in ("v1", "cot"):
            for geometry_id in GEOMETRIES:
                cases.append(
                    pytest.param(doc_key, style, geometry_id, id=f"{doc_key}__{style}__{geometry_id}")
                )
    for doc_key in (
        "ad_distance_unnamed",
        "ad_angle_named",
        "ad_angle_unnamed",
        "feta_distance_empty_description",
    ):
        for style in ("v1", "cot"):
            cases.append(pytest.param(doc_key, style, "qwen", id=f"{doc_key}__{style}__qwen"))
    return cases


def _read_golden(name: str) -> str:
    with open(GOLDEN_DIR / f"{name}.txt", encoding="utf-8", newline="") as handle:
        return handle.read()


def _prompt_for(doc_key: str, style: str, geometry_id: str | None) -> str:
    doc = DOCS[doc_key]
    if geometry_id is None:
        return build_prompt(doc, style)
    geometry_text, fix = GEOMETRIES[geometry_id]
    perceived = perceive(parse_geometry(geometry_text), *SLICE_HW, fix=fix)
    pixel_size_wh = stated_pixel_size(SPACING_HW, SLICE_HW, perceived.content_hw)
    canvas_h, canvas_w = perceived.canvas_hw
    return build_prompt(doc, style, pixel_size_wh=pixel_size_wh, image_size_wh=(canvas_w, canvas_h))


@pytest.mark.parametrize(("doc_key", "style", "geometry_id"), _cases())
def test_prompt_matches_golden(doc_key: str, style: str, geometry_id: str | None) -> None:
    name = f"{doc_key}__{style}" + (f"__{geometry_id}" if geometry_id else "")
    prompt = _prompt_for(doc_key, style, geometry_id)
    assert prompt == _read_golden(name)
    assert not prompt.endswith("\n")


def test_every_golden_file_is_used() -> None:
    used = {param.id for param in _cases()} | {"system_prompt_medvision_v0"}
    assert {path.stem for path in GOLDEN_DIR.glob("*.txt")} == used


def test_golden_files_have_no_trailing_newline() -> None:
    for path in GOLDEN_DIR.glob("*.txt"):
        assert not path.read_bytes().endswith(b"\n"), path.name


def test_system_prompt_matches_golden() -> None:
    assert MEDVISION_V0_SYSTEM_PROMPT == _read_golden("system_prompt_medvision_v0")


# --- Hand-checked fragments, independent of the golden files ---------------------------------------


def test_tl_v1_uses_list_unit_unchanged() -> None:
    prompt = _prompt_for("tl", "v1", "qwen")
    assert "the ellipse enclosing the kidney tumor, in mm.\n" in prompt
    assert "The pixel size for this image is 0.686 mm (width) x 0.762 mm (height).\n" in prompt


def test_tl_cot_says_millimeters_and_states_canvas() -> None:
    prompt = _prompt_for("tl", "cot", "qwen")
    assert "in millimeters.\n" in prompt
    assert "The image size is 392 pixels (width) x 168 pixels (height).\n" in prompt
    assert "0.686 millimeters (width) x 0.762 millimeters (height).\n" in prompt


@pytest.mark.parametrize(
    ("unit", "expected"),
    [("mm", "millimeters"), ("cm", "centimeters"), (["mm"], "mm"), (["cm"], "cm")],
)
def test_tl_v1_unit_rule(unit: object, expected: str) -> None:
    doc = dict(DOCS["tl"], biometric_profile={"metric_unit": unit})
    prompt = build_prompt(doc, "v1", pixel_size_wh=(0.5, 0.25))
    assert f", in {expected}.\n" in prompt
    assert f"0.500 {expected} (width) x 0.250 {expected} (height)." in prompt


def test_stated_numbers_per_geometry() -> None:
    expected = {
        "qwen": "0.686 mm (width) x 0.762 mm (height)",
        "fixed896": "0.300 mm (width) x 0.143 mm (height)",
        "clip336_v1": "0.800 mm (width) x 0.381 mm (height)",
        "clip336_fix": "0.800 mm (width) x 0.914 mm (height)",
    }
    for geometry_id, fragment in expected.items():
        assert fragment in _prompt_for("ad_distance_named", "v1", geometry_id)


def test_ad_angle_keeps_degree_and_mm_pixel_line() -> None:
    prompt = _prompt_for("ad_angle_unnamed", "v1", "qwen")
    assert "estimate the angle between 2 lines in degree: (line 1) the line connecting Sella and" in prompt
    assert "Nasion and Subspinale.\nAdditional information:\n" in prompt
    assert "0.686 mm (width) x 0.762 mm (height)" in prompt


def test_feta_empty_description_v1_and_cot() -> None:
    v1 = _prompt_for("feta_distance_empty_description", "v1", "qwen")
    cot = _prompt_for("feta_distance_empty_description", "cot", "qwen")
    assert v1.startswith("Task:\nGiven the input medical image: , estimate the distance of corpus callosum")
    assert cot.startswith("Task:\nGiven the input medical image, estimate the distance of corpus callosum")


def test_detection_ignores_sizes() -> None:
    doc = DOCS["detection"]
    for style in ("v1", "cot"):
        assert build_prompt(doc, style, (0.1, 0.2), (10, 20)) == build_prompt(doc, style)


@pytest.mark.parametrize("doc_key", ["tl", "ad_distance_named"])
def test_missing_pixel_size_raises(doc_key: str) -> None:
    with pytest.raises(ValueError, match="needs pixel_size_wh"):
        build_prompt(DOCS[doc_key], "v1")


@pytest.mark.parametrize("doc_key", ["tl", "ad_angle_named"])
def test_cot_missing_image_size_raises(doc_key: str) -> None:
    with pytest.raises(ValueError, match="needs image_size_wh"):
        build_prompt(DOCS[doc_key], "cot", pixel_size_wh=(0.5, 0.5))


def test_unknown_style_raises_with_closest_match() -> None:
    with pytest.raises(SettingsError, match=r"prompt style 'cott' is unknown; did you mean 'cot'\?"):
        build_prompt(DOCS["detection"], "cott")


def test_unknown_family_raises() -> None:
    with pytest.raises(ValueError, match="mv_family"):
        build_prompt({"mv_family": "segmentation"}, "v1")


def test_bad_metric_type_raises() -> None:
    doc = dict(DOCS["ad_distance_named"], biometric_profile={"metric_type": "area", "metric_unit": "mm"})
    with pytest.raises(ValueError, match="metric_type"):
        build_prompt(doc, "v1", pixel_size_wh=(0.5, 0.5))


def test_prompt_sha1() -> None:
    assert prompt_sha1("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d"
    assert len(prompt_sha1(_prompt_for("tl", "v1", "qwen"))) == 40
