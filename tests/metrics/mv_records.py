"""Synthetic ``mv_record`` factories for the metrics tests (no lmms-eval, no data root)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SETTINGS_V1: dict[str, Any] = {
    "intensity": "minmax",
    "perceived_size_fix": 0,
    "geometry": None,
    "parse": "last_k",
    "box_fix": 0,
    "ad_drop_near_zero": 0,
    "tl_remove_multicluster": 0,
    "planner_version": "1.0.0",
    "sample_cap": 1000,
    "prompt_style": "v1",
    "reshape": None,
    "filtering": True,
}

BOX = [0.25, 0.25, 0.75, 0.75]  # exactly representable: IoU of an exact answer is exactly 1
EXACT_BOX = "0.25, 0.25, 0.75, 0.75"
HALF_BOX = "0.25, 0.25, 0.75, 0.5"  # I = 0.125, Ap = 0.125, Ag = 0.25: IoU 0.5, F1 2/3, P 1, R 0.5
FAILURE = "I cannot tell."


def make_record(
    family: str = "detection",
    *,
    row: int = 0,
    response: str = EXACT_BOX,
    config: str | None = None,
    target: list[float] | None = None,
    adapter: str = "medvision_v0",
    pretrained: str | None = None,
    dataset: str = "KiTS23",
    region_label: str | None = None,
    region_modality: str | None = None,
    label_name: str | None = None,
    modality: str = "CT",
    slice_dim: int = 2,
    metric_type: str | None = None,
    metric_key: str | None = None,
    settings: dict[str, Any] | None = None,
    settings_id: str = "settings0001",
    data_root_kind: str = "real",
    multi_instance: bool = False,
    multicluster_listed: bool | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """One schema-1 record with every field present."""
    if target is None:
        target = {"detection": list(BOX), "tl": [30.0, 20.0], "ad": [50.0]}[family]
    if family == "detection":
        region_label = "kidney" if region_label is None else region_label
        region_modality = "CT" if region_modality is None else region_modality
    if family == "tl":
        label_name = label_name or "kidney tumor"
    if config is None:
        config = f"{dataset}_{family}_{region_label or label_name or metric_key}_Task01_Axial_Test"
    record: dict[str, Any] = {
        "schema": 1,
        "task": f"medvision_{family}_test",
        "family": family,
        "config": config,
        "row": row,
        "dataset": dataset,
        "taskID": "01",
        "slice_dim": slice_dim,
        "slice_idx": row,
        "label": 1,
        "label_name": label_name,
        "image_file_rel": f"images/case_{row:04d}.nii.gz",
        "image_size_2d": [512, 512],
        "modality": modality,
        "region_label": region_label,
        "region_modality": region_modality,
        "metric_type": metric_type,
        "metric_key": metric_key,
        "prompt_sha1": "0" * 40,
        "geometry": None,
        "target": target,
        "response": response,
        "truncated": False,
        "parsed": None,
        "success": False,
        "metrics": {},
        "excluded": False,
        "exclusion_reason": None,
        "multicluster_listed": multicluster_listed,
        "settings": dict(SETTINGS_V1 if settings is None else settings),
        "settings_id": settings_id,
        "model": {"adapter": adapter, "pretrained": pretrained, "backend": "vllm", "generation": None},
        "data_root_kind": data_root_kind,
        "multi_instance": multi_instance,
        "plugin_version": "0.1.0",
    }
    record.update(overrides)
    return record


def make_records(count: int, start: int = 0, **kwargs: Any) -> list[dict[str, Any]]:
    """``count`` records with rows ``start..start+count-1`` and the same fields."""
    return [make_record(row=start + i, **kwargs) for i in range(count)]


def write_samples(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write records as an lmms-eval samples file (one JSON object per line, record under ``mv_record``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for doc_id, record in enumerate(records):
            handle.write(
                json.dumps({"doc_id": doc_id, "resps": [[record["response"]]], "mv_record": record}) + "\n"
            )
    return path


def detection_records() -> list[dict[str, Any]]:
    """Kidney (anatomy) N=50 with 10 failures; Liver N=49 (under the floor); Kidney tumour N=60 (30 exact,
    30 half boxes); Others ("na") N=55 and Miscellaneous ("tumor") N=70, both excluded keys."""
    recs = make_records(40, region_label="kidney") + make_records(
        10, 40, region_label="kidney", response=FAILURE
    )
    recs += make_records(49, region_label="liver")
    recs += make_records(30, region_label="kidney tumor") + make_records(
        30, 30, region_label="kidney tumor", response=HALF_BOX
    )
    recs += make_records(55, region_label="na") + make_records(70, region_label="tumor", response=HALF_BOX)
    return recs


def tl_records() -> list[dict[str, Any]]:
    """Example E with a rename merge and a zero-success label.

    * "liver cancer" (LiTS) + "liver tumour" (MSD) merge into "liver tumor @ CT (A)": N = 100, 90 successes
      answering (35, 25) against (30, 20): MAE 5, MRE (5/30 + 5/20)/2.
    * "kidney tumor": N = 50, 25 successes: 5 exact (MRE 0 < 0.1) and 20 at (42.5, 32.5), so
      MAE = 20 x 12.5/25 = 10 and MRE = 20 x (12.5/30 + 12.5/20)/2 / 25 = (10/30 + 10/20)/2.
    * "pancreas cancer": N = 20, no success: dropped from the row entirely (v1 quirk).
    """
    recs: list[dict[str, Any]] = []
    for dataset, name in (("LiTS", "liver cancer"), ("MSD", "liver tumour")):
        recs += make_records(45, family="tl", dataset=dataset, label_name=name, response="35, 25")
        recs += make_records(5, 45, family="tl", dataset=dataset, label_name=name, response=FAILURE)
    recs += make_records(5, family="tl", label_name="kidney tumor", response="30, 20")
    recs += make_records(20, 5, family="tl", label_name="kidney tumor", response="42.5, 32.5")
    recs += make_records(25, 25, family="tl", label_name="kidney tumor", response=FAILURE)
    recs += make_records(20, family="tl", dataset="MSD", label_name="pancreas cancer", response=FAILURE)
    return recs


CEPH = "Ceph-Biometrics-400"


def ad_records() -> list[dict[str, Any]]:
    """Ceph distance S-N: N = 100, 90 answer 45 against 40 (AE 5, RE 0.125); Go-Me: N = 50, no success.
    Ceph angle ANB: 3 GT 0.05 answered 1 (AE 0.95), 7 GT 10 answered 12 (AE 2, RE 0.2).
    FeTA24 distance bpd: one per plane, GT 80 answered 84 (AE 4, RE 0.05), pooled."""
    ceph = {"family": "ad", "dataset": CEPH, "metric_type": "distance"}
    recs = make_records(90, metric_key="S-N", target=[40.0], response="45", **ceph)
    recs += make_records(10, 90, metric_key="S-N", target=[40.0], response=FAILURE, **ceph)
    recs += make_records(50, metric_key="Go-Me", target=[70.0], response=FAILURE, **ceph)
    angle = {"family": "ad", "dataset": CEPH, "metric_type": "angle", "metric_key": "ANB"}
    recs += make_records(3, target=[0.05], response="1", **angle)
    recs += make_records(7, 3, target=[10.0], response="12", **angle)
    for plane, name in enumerate(("Sagittal", "Coronal", "Axial")):
        recs.append(
            make_record(
                "ad",
                dataset="FeTA24",
                metric_type="distance",
                metric_key="bpd",
                slice_dim=plane,
                config=f"FeTA24_BiometricsFromLandmarks_Distance_Task01_{name}_Test",
                target=[80.0],
                response="84",
            )
        )
    return recs


# (adapter, pretrained) of the 13 paper models; model_key_for maps them onto the paper's model_keys
PAPER_MODELS: tuple[tuple[str, str | None], ...] = (
    ("medvision_v0", None),
    ("medvision_lingshu", None),
    ("medvision_medgemma", "google/medgemma-27b-it"),
    ("medvision_medgemma", "google/medgemma-4b-it"),
    ("medvision_qwen2_5_vl", "Qwen/Qwen2.5-VL-32B-Instruct"),
    ("medvision_llava_onevision", None),
    ("medvision_internvl3", None),
    ("medvision_qwen2_5_vl", "Qwen/Qwen2.5-VL-7B-Instruct"),
    ("medvision_gemma3", None),
    ("medvision_healthgpt", None),
    ("medvision_meddr", None),
    ("medvision_huatuogpt_vision", None),
    ("medvision_llama3_2_vision", None),
)
DETECTION_REGIONS: tuple[tuple[str, str, int], ...] = (
    ("kidney", "CT", 2), ("liver", "CT", 2), ("spleen", "CT", 2), ("pancreas", "CT", 2), ("aorta", "CT", 2),
    ("stomach", "CT", 2), ("gallbladder", "CT", 1), ("esophagus", "CT", 0), ("left lung", "CT", 2),
    ("heart", "MRI", 2), ("brainstem", "MRI", 0), ("femur", "MRI", 1), ("prostate", "MRI", 2),
    ("vertebra L1", "CT", 0), ("left 5th rib", "CT", 1), ("colon", "CT", 2), ("left hip", "CT", 1),
    ("upper jawbone", "CT", 2), ("kidney tumor", "CT", 2), ("liver tumor", "CT", 2), ("lung cancer", "CT", 2),
    ("pancreas cancer", "CT", 2), ("enhancing brain tumor", "MRI", 2), ("metastatic lymph node", "CT", 2),
    ("colon cancer primaries", "CT", 2), ("vestibular schwannoma", "MRI", 2),
)  # fmt: skip
TL_LABELS: tuple[tuple[str, str], ...] = (
    ("KiTS23", "kidney tumor"), ("LiTS", "liver cancer"), ("MSD", "lung cancer"), ("BraTS", "enhancing brain tumor"),
    ("HNTS", "primary gross tumor volume (head & neck)"), ("MSD", "pancreas cancer"),
)  # fmt: skip
AD_LABELS: tuple[tuple[str, str, str], ...] = tuple(
    [(CEPH, "distance", f"L-{i}-{i + 1}") for i in range(1, 6)]
    + [(CEPH, "angle", f"A-{i}") for i in range(1, 5)]
    + [("FeTA24", "distance", f"L-{i}-{i + 1}") for i in range(1, 6, 2)]
)


def paper_model_records(per_region: int = 50, per_label: int = 12, seed: int = 0) -> list[dict[str, Any]]:
    """The 13 paper models on 26 detection regions (18 anatomy + 8 tumour/lesion), 6 T/L labels and 12 A/D
    labels, each model answering with its own noise level (deterministic); volumes hold 5 slices each."""
    import random

    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for m, (adapter, pretrained) in enumerate(PAPER_MODELS):
        noise = 0.02 + 0.02 * m
        model = {"adapter": adapter, "pretrained": pretrained, "settings_id": f"paper{m:02d}"}
        for label, modality, plane in DETECTION_REGIONS:
            for row in range(per_region):
                box = [min(max(v + rng.gauss(0, noise), 0.0), 1.0) for v in BOX]
                answer = ", ".join(f"{v:.3f}" for v in box) if rng.random() > 0.02 * m else FAILURE
                out.append(
                    make_record(
                        row=row, region_label=label, region_modality=modality, slice_dim=plane, response=answer,
                        dataset=f"DS-{label}", image_file_rel=f"images/{label}_{row // 5:03d}.nii.gz", **model,
                    )
                )  # fmt: skip
        for dataset, name in TL_LABELS:
            for row in range(per_label):
                g = (20.0 + row, 10.0 + row / 2)
                answer = f"{g[0] * (1 + rng.gauss(0, noise * 4)):.2f}, {g[1] * (1 + rng.gauss(0, noise * 4)):.2f}"
                out.append(
                    make_record(
                        "tl", row=row, dataset=dataset, label_name=name, target=list(g), response=answer,
                        image_file_rel=f"images/{dataset}_{row // 5:03d}.nii.gz", **model,
                    )
                )  # fmt: skip
        for dataset, kind, key in AD_LABELS:
            for row in range(per_label):
                g = 30.0 + row
                out.append(
                    make_record(
                        "ad", row=row, dataset=dataset, metric_type=kind, metric_key=key, target=[g],
                        response=f"{g * (1 + rng.gauss(0, noise * 3)):.2f}",
                        image_file_rel=f"images/{dataset}_{row // 5:03d}.nii.gz", **model,
                    )
                )  # fmt: skip
    return out
