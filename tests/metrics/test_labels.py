"""docs/reference.md §6.2-§6.4 keys and §6.7 label maps (the shipped copy; the reference file is not available in
CI)."""

from __future__ import annotations

from collections import Counter

import pytest
from medvision_metrics.errors import RecordError
from medvision_metrics.labels import (
    ad_label_key,
    is_excluded_region,
    is_tumor_lesion_region,
    load_label_maps,
    minimum_group_size,
    region_key,
    tl_label_key,
)

PARENTS = {
    "Artery", "Vein", "Brain", "Brain Tumor/Lesion", "Heart", "Lung", "Lung Tumor/Lesion", "Liver",
    "Liver Tumor/Lesion", "Kidney", "Kidney Tumor/Lesion", "Pancreas", "Pancreas Tumor/Lesion", "Gallbladder",
    "Spleen", "Adrenal Gland", "Colon", "Colon Tumor/Lesion", "Intestine", "Esophagus", "Stomach",
    "Urinary System", "Uterus", "Prostate", "Head-Neck", "Head-Neck Tumor/Lesion", "Hip", "Rib", "Spine",
    "Knee", "Metastatic Lymph Node", "Miscellaneous Tumor/Lesion", "Jawbone", "Tooth", "Others",
}  # fmt: skip
RENAMED = {
    "inferior vena cava (ivc)": "inferior vena cava",
    "postcava (inferior vena cava)": "postcava",
    "portal vein and splenic vein": "portal and splenic vein",
    "anterior hippocampus": "hippocampus",
    "posterior hippocampus": "hippocampus",
    "deep grey matter": "grey matter",
    "external cerebrospinal fluid": "cerebrospinal fluid",
    "peritumoral edema of brain": "brain edema",
    "edema of brain": "brain edema",
    "surrounding non-enhancing flair hyperintensity of brain": "non-enhancing flair hyperintensity of brain",
    "resection cavity of brain": "brain resection cavity",
    "enhancing brain tumor tissue": "enhancing brain tumor",
    "gross tumor volume of brain": "brain tumor",
    "cystic component of brain": "brain cyst",
    "left atrium of heart": "left atrium",
    "liver cancer": "liver tumor",
    "liver tumour": "liver tumor",
    "gall bladder": "gallbladder",
    "left adrenal gland (lag)": "left adrenal gland",
    "right adrenal gland (rag)": "right adrenal gland",
    "colon cancer primaries": "colon cancer",
    "peripheral zone of prostate": "prostate",
    "transition zone of prostate": "prostate",
    "primary gross tumor volume (head & neck)": "head & neck tumor",
    "edema": "miscellaneous tumor/lesion",
    "tumor": "miscellaneous tumor/lesion",
    "cystic component": "miscellaneous tumor/lesion",
    "na": "others",
    "implant": "others",
    "crown": "others",
    "bridge": "others",
}


def test_shipped_maps_have_243_keys_and_35_parents() -> None:
    maps = load_label_maps()
    regroup, rename = maps["label_map_regroup"], maps["label_map_rename"]
    assert len(regroup) == 243
    assert set(regroup.values()) == PARENTS and len(PARENTS) == 35
    assert set(rename) == set(regroup)


def test_rename_map_is_identity_except_31_entries() -> None:
    rename = load_label_maps()["label_map_rename"]
    changed = {k: v for k, v in rename.items() if k != v}
    assert changed == RENAMED and len(changed) == 31


def test_parent_sizes_match_the_spec_table() -> None:
    sizes = Counter(load_label_maps()["label_map_regroup"].values())
    assert sizes["Tooth"] == 32
    assert sizes["Artery"] == 22
    assert sizes["Rib"] == 25  # 2 x 12 ribs + costal cartilages
    assert sizes["Spine"] == 28  # C1-C7, T1-T12, L1-L5, S1, vertebrae, discs, spinal cord
    assert sizes["Others"] == 15


def test_constants() -> None:
    maps = load_label_maps()
    assert maps["EXCLUDED_KEYS"] == ["miscellaneous", "others"]
    assert maps["TUMOR_LESION_GROUP_KEYS"] == ["tumor", "lesion", "metastatic"]
    assert minimum_group_size() == 50
    assert (maps["RANDOM_BOX_SIMULATIONS"], maps["SEED"]) == (100, 1024)


def test_eight_tumor_lesion_parents() -> None:
    parents = {p for p in PARENTS if is_tumor_lesion_region(p) and not is_excluded_region(p)}
    assert len(parents) == 8
    assert "Metastatic Lymph Node" in parents


@pytest.mark.parametrize(
    ("label", "modality", "slice_dim", "key"),
    [
        ("kidney tumor", "CT", 2, "Kidney Tumor/Lesion @ CT (A)"),
        ("left kidney", "MRI", 0, "Kidney @ MR (S)"),
        ("liver", "ultrasound", 1, "Liver @ US (C)"),
        ("vertebra C1", "X-ray", 2, "Spine @ XR (A)"),
        ("brain", "PET", 2, "Brain @ PET (A)"),
        ("brain", "mri", 2, "Brain @ mri (A)"),  # exact match only: other values pass through
        ("brain", "T1w", 2, "Brain @ T1w (A)"),
    ],
)
def test_region_key(label: str, modality: str, slice_dim: int, key: str) -> None:
    assert region_key(label, modality, slice_dim) == key


def test_unknown_region_label_errors_with_the_way_out() -> None:
    with pytest.raises(RecordError, match="'spleen capsule'.*--unknown-label others"):
        region_key("spleen capsule", "CT", 2)
    with pytest.raises(RecordError, match="'Kidney'"):  # matching is exact
        region_key("Kidney", "CT", 2)
    assert region_key("spleen capsule", "CT", 2, unknown="others") == "Others @ CT (A)"


def test_bad_slice_dim_and_policy() -> None:
    with pytest.raises(RecordError, match="slice_dim must be 0, 1 or 2"):
        region_key("kidney", "CT", 3)
    with pytest.raises(ValueError, match="unknown-label policy"):
        region_key("kidney", "CT", 2, unknown="ignore")


def test_tl_label_key_renames_and_merges() -> None:
    assert (
        tl_label_key("liver cancer", "CT", 2)
        == tl_label_key("liver tumour", "CT", 2)
        == "liver tumor @ CT (A)"
    )
    assert tl_label_key("kidney tumor", "CT", 1) == "kidney tumor @ CT (C)"
    with pytest.raises(RecordError, match="--unknown-label others"):
        tl_label_key("giant cyst", "CT", 2)
    assert tl_label_key("giant cyst", "CT", 2, unknown="others") == "others @ CT (A)"


def test_ad_label_key() -> None:
    assert ad_label_key("Ceph-Biometrics-400", "angle", "ANB") == "Ceph-Biometrics-400_angle_ANB"
    with pytest.raises(RecordError, match="metric_key"):
        ad_label_key("FeTA24", "distance", None)


def test_exclusion_and_tumor_keywords_on_lower_cased_keys() -> None:
    assert is_excluded_region("Others @ CT (A)")
    assert is_excluded_region("Miscellaneous Tumor/Lesion @ MR (A)")
    assert not is_excluded_region("Kidney Tumor/Lesion @ CT (A)")
    assert is_tumor_lesion_region("Metastatic Lymph Node @ CT (A)")
    assert is_tumor_lesion_region("Brain Tumor/Lesion @ MR (A)")
    assert not is_tumor_lesion_region("Kidney @ CT (A)")
