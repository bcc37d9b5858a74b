"""Spacing counterfactual variants: inventory, catalogue refusals, renders, stated pixel size, GT, record."""

from __future__ import annotations

import json
import re

import pytest

from medvision_tasks import catalogue, hooks
from medvision_tasks.catalogue import YAML_DIR, CatalogueError, build_subtasks, groups, read_catalogue
from medvision_tasks.geometry import perceive_chain, stated_pixel_size

TL_MAIN = [
    "autopetiii_task01", "brats24_task04", "brats24_task05", "brats24_task10", "hntsmrg24_task02",
    "kipa22_task01", "kits23_task01", "msd_task03", "msd_task05", "msd_task06",
]  # fmt: skip
AD_BASES = [
    "medvision_ad_cephbiometrics400_distance_task01_sagittal",
    "medvision_ad_cephbiometrics400_angle_task01_sagittal",
    "medvision_ad_feta24_task01_sagittal",
    "medvision_ad_feta24_task01_coronal",
    "medvision_ad_feta24_task01_axial",
]
DEMO_BASES = [
    "medvision_demo_tl_kits23_task01_axial",
    "medvision_demo_ad_cephbiometrics400_distance_task01_sagittal",
    "medvision_demo_ad_cephbiometrics400_angle_task01_sagittal",
    "medvision_demo_ad_feta24_task01_sagittal",
    "medvision_demo_ad_feta24_task01_coronal",
    "medvision_demo_ad_feta24_task01_axial",
]
SUFFIX = {0.5: "_k0p5", 2.0: "_k2"}
HEADER_K = "set\tconfig\tlisted\tn_test\tk\n"
NUMBER = re.compile(r"\d+\.\d{3}")


def _stub(name: str) -> dict:
    path = next(YAML_DIR.glob(f"*/stubs/{name}.jsonl"))
    return json.loads(path.read_text())


def _docs(name: str) -> list[dict]:
    return hooks.build_rows(_stub(name))


# ------------------------------------------------------------------------------------------ inventory
def test_inventory_of_spacing_variants_and_groups():
    subtasks = build_subtasks(read_catalogue())
    by_name = {s.name: s for s in subtasks}
    bases = [f"medvision_tl_{t}_axial" for t in TL_MAIN] + AD_BASES
    expected = {base + SUFFIX[k]: (base, k) for k in (0.5, 2.0) for base in bases}
    spacing = {s.name: (s.base_task, s.spacing_k) for s in subtasks if s.set == "spacing"}
    assert spacing == expected
    for name, (base, k) in expected.items():
        s = by_name[name]
        assert by_name[base].set == "main" and s.config == by_name[base].config and s.family == by_name[base].family
        assert s.n_test == by_name[base].n_test and s.data_root_kind == "real"
        assert _stub(name)["mv_variant"] == {
            "set": "spacing", "prompt_style": "v1", "reshape": None, "spacing_k": k, "base_task": base,
        }  # fmt: skip
    demo = {s.name: (s.base_task, s.spacing_k) for s in subtasks if s.set == "demo_spacing"}
    assert demo == {base + SUFFIX[k]: (base, k) for k in (0.5, 2.0) for base in DEMO_BASES}
    group_map = groups(subtasks)
    assert sorted(group_map["medvision_spacing"][0]) == sorted(expected)
    assert sorted(group_map["medvision_spacing_tl"][0]) == sorted(n for n in expected if "_tl_" in n)
    assert sorted(group_map["medvision_spacing_ad"][0]) == sorted(n for n in expected if "_ad_" in n)
    assert len(group_map["medvision_spacing_tl"][0]) == 20 and len(group_map["medvision_spacing_ad"][0]) == 10
    assert sorted(group_map["medvision_demo_spacing"][0]) == sorted(demo)
    # the demo group and `make demo` are unchanged: no spacing variant in medvision_demo
    assert not any(name in demo for name in group_map["medvision_demo"][0])
    for group in ("medvision_spacing", "medvision_spacing_tl", "medvision_spacing_ad", "medvision_demo_spacing"):
        assert (YAML_DIR / "groups" / f"{group}.yaml").is_file()
        assert f"`{group}`" in catalogue.docs_text()


@pytest.mark.parametrize("k", ["0", "-1", "-0.5", "nan", "inf", "-inf", "two", ""])
def test_catalogue_refuses_a_bad_spacing_factor_naming_the_row(tmp_path, k):
    path = tmp_path / "catalogue.tsv"
    config = "KiTS23_TumorLesionSize_Task01_Axial_Test"
    path.write_text(HEADER_K + f"main\t{config}\t1\t1\nspacing\t{config}\t1\t1\t{k}\n")
    with pytest.raises(CatalogueError, match=rf"catalogue.tsv:3 \(spacing {config}\): spacing factor k="):
        read_catalogue(path)


def test_catalogue_refuses_spacing_rows_without_k_base_or_length(tmp_path):
    path = tmp_path / "catalogue.tsv"
    tl = "KiTS23_TumorLesionSize_Task01_Axial_Test"
    path.write_text(HEADER_K + f"spacing\t{tl}\t1\t1\n")
    with pytest.raises(CatalogueError, match=r"catalogue.tsv:2: a spacing row needs 5 tab-separated columns"):
        read_catalogue(path)
    path.write_text(HEADER_K + f"spacing\t{tl}\t1\t1\t2\n")
    with pytest.raises(CatalogueError, match=r"catalogue.tsv:2: spacing row .* has no base subtask"):
        read_catalogue(path)
    det = "KiTS23_BoxSize_Task01_Axial_Test"
    path.write_text(HEADER_K + f"main\t{det}\t1\t1\nspacing\t{det}\t1\t1\t2\n")
    with pytest.raises(CatalogueError, match=r"catalogue.tsv:3: .*spacing variants are for T/L and A/D"):
        read_catalogue(path)


# ------------------------------------------------------------------------------------- rows and renders
@pytest.mark.parametrize("base", DEMO_BASES)
def test_variant_rows_and_renders_equal_the_base_task(base, monkeypatch):
    monkeypatch.setenv("MEDVISION_GEOMETRY", "native")
    base_docs = _docs(base)
    for k in (0.5, 2.0):
        docs = _docs(base + SUFFIX[k])
        assert len(docs) == len(base_docs)
        for doc, ref in zip(docs, base_docs):
            assert (doc["image_file"], doc["slice_dim"], doc["slice_idx"], doc["mv_row"]) == (
                ref["image_file"], ref["slice_dim"], ref["slice_idx"], ref["mv_row"],
            )  # fmt: skip
        for doc, ref in list(zip(docs, base_docs))[:3]:
            (img,), (ref_img,) = hooks.doc_to_visual(doc), hooks.doc_to_visual(ref)
            assert img.mode == ref_img.mode and img.size == ref_img.size
            assert img.tobytes() == ref_img.tobytes()


# -------------------------------------------------------------------------------------- stated pixel size
GEOMETRIES = {
    "qwen_smart_resize": ("qwen_smart_resize", "0"),
    "fixed_resize": ("fixed:size=896", "0"),
    "padded_canvas": ("clip336_pad", "1"),
}


@pytest.mark.parametrize("family", sorted(GEOMETRIES))
@pytest.mark.parametrize(
    "base", ["medvision_demo_tl_kits23_task01_axial", "medvision_demo_ad_cephbiometrics400_angle_task01_sagittal"]
)
def test_stated_pixel_size_is_base_times_k_after_the_geometry_rule(family, base, monkeypatch):
    rule, fix = GEOMETRIES[family]
    monkeypatch.setenv("MEDVISION_GEOMETRY", rule)
    monkeypatch.setenv("MEDVISION_PERCEIVED_SIZE_FIX", fix)
    ref = _docs(base)[0]
    base_text, base_geometry = hooks.prompt_and_geometry(ref)
    (h, w), spacing_hw = hooks._slice_geometry(ref, hooks.settings_for(ref))
    perceived, _ = perceive_chain(rule, h, w, fix=fix == "1")
    if family == "padded_canvas":
        assert perceived.canvas_hw != perceived.content_hw  # the slice is padded: content differs from canvas
    pw, ph = stated_pixel_size(spacing_hw, (h, w), perceived.content_hw)
    assert base_geometry["stated_spacing_wh"] == [round(pw, 3), round(ph, 3)]
    assert NUMBER.findall(base_text) == [f"{pw:.3f}", f"{ph:.3f}"]
    for k in (0.5, 2.0):
        doc = _docs(base + SUFFIX[k])[0]
        text, geometry = hooks.prompt_and_geometry(doc)
        assert NUMBER.findall(text) == [f"{pw * k:.3f}", f"{ph * k:.3f}"]
        # everything but the stated numbers is the base prompt
        assert NUMBER.sub("#", text) == NUMBER.sub("#", base_text)
        assert geometry["stated_spacing_wh"] == [round(pw * k, 3), round(ph * k, 3)]
        assert geometry["spacing_k"] == k
        assert geometry["canvas"] == base_geometry["canvas"] and geometry["content"] == base_geometry["content"]


# ----------------------------------------------------------------------------------------------- GT
@pytest.mark.parametrize("base", DEMO_BASES)
def test_target_is_base_float16_target_times_k_and_angles_unchanged(base, monkeypatch):
    import numpy as np

    monkeypatch.setenv("MEDVISION_GEOMETRY", "native")
    base_docs = _docs(base)
    angle = "_angle_" in base
    for k in (0.5, 2.0):
        for doc, ref in zip(_docs(base + SUFFIX[k]), base_docs):
            ref_target = hooks.doc_to_target(ref)
            assert all(float(np.float16(v)) == v for v in ref_target)  # the stored float16 value
            expected = ref_target if angle else [v * k for v in ref_target]
            assert hooks.doc_to_target(doc) == expected
    doc, ref = _docs(base + SUFFIX[2.0])[0], base_docs[0]
    record = hooks.process_results(doc, ["1.5, 2.5"])["mv_record"]
    base_record = hooks.process_results(ref, ["1.5, 2.5"])["mv_record"]
    assert record["spacing"] == {"k": 2.0, "base_task": base, "scaled_target": not angle}
    assert "spacing" not in base_record
    assert record["settings_id"] == base_record["settings_id"] and record["row"] == base_record["row"]
    assert record["config"] == base_record["config"] and record["task"] == base + SUFFIX[2.0]


def test_an_edited_stub_with_a_bad_k_is_refused(monkeypatch):
    from medvision_tasks.errors import SettingsError

    monkeypatch.setenv("MEDVISION_GEOMETRY", "native")
    doc = dict(_docs("medvision_demo_tl_kits23_task01_axial_k2")[0])
    doc["mv_variant"] = dict(doc["mv_variant"], spacing_k=-2)
    with pytest.raises(SettingsError, match=r"spacing_k=-2 must be a finite number > 0"):
        hooks.doc_to_target(doc)


def test_export_requests_stubs_equal_the_generated_stubs():
    from medvision_tasks.export_requests import stub_for

    for s in build_subtasks(read_catalogue()):
        if s.set in ("spacing", "demo_spacing", "main", "demo"):
            assert stub_for(s) == _stub(s.name), s.name
