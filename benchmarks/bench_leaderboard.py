"""Benchmark: ``medvision-eval leaderboard --format json`` end to end on 30,000 synthetic records.

Writes one lmms-eval samples file per subtask (``<timestamp>_samples_medvision_<task>.jsonl``, the layout
``medvision-eval run`` produces, each line with the prompt, the response, the lmms-eval metric entries and the
``mv_record``) into a temporary folder, then times the real console script in a subprocess (median of 3).

Run: ``.venv/bin/python benchmarks/bench_leaderboard.py [--records 30000] [--repeats 3] [--extra="--ci 0.95"]``.
Not collected by pytest. Goal (issue 5): at most 3 s on the project's 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL_S = 3.0
TIMESTAMP = "20250101_120000"
SETTINGS: dict[str, Any] = {
    "intensity": "minmax",
    "perceived_size_fix": False,
    "geometry": None,
    "parse": "last_k",
    "box_fix": False,
    "ad_drop_near_zero": False,
    "tl_remove_multicluster": False,
    "planner_version": "1.0.0",
    "sample_cap": 1000,
    "prompt_style": "v1",
    "reshape": None,
    "filtering": True,
}
# (dataset, fine label, modality, plane): 24 detection subtasks of 1000 rows = 24,000 records
DETECTION: list[tuple[str, str, str, int]] = [
    (f"DS{i:02d}", label, modality, plane)
    for i, (label, modality, plane) in enumerate(
        [
            ("kidney", "CT", 2), ("liver", "CT", 2), ("spleen", "CT", 2), ("pancreas", "CT", 2),
            ("aorta", "CT", 2), ("stomach", "CT", 2), ("gallbladder", "CT", 1), ("esophagus", "CT", 0),
            ("left lung", "CT", 2), ("heart", "MRI", 2), ("brainstem", "MRI", 0), ("femur", "MRI", 1),
            ("prostate", "MRI", 2), ("vertebra L1", "CT", 0), ("left 5th rib", "CT", 1), ("colon", "CT", 2),
            ("kidney tumor", "CT", 2), ("liver tumor", "CT", 2), ("lung cancer", "CT", 2),
            ("pancreas cancer", "CT", 2), ("enhancing brain tumor", "MRI", 2), ("metastatic lymph node", "CT", 2),
            ("tumor", "PET", 2), ("na", "X-ray", 2),
        ]
    )
]  # fmt: skip
# 6 T/L subtasks of 500 rows = 3,000 records
TL: list[tuple[str, str, str, int]] = [
    ("KiTS23", "kidney tumor", "CT", 2), ("LiTS", "liver cancer", "CT", 2), ("MSD", "liver tumour", "CT", 2),
    ("MSD-Lung", "lung cancer", "CT", 2), ("BraTS", "enhancing brain tumor", "MRI", 2),
    ("HNTS", "primary gross tumor volume (head & neck)", "MRI", 2),
]  # fmt: skip
# A/D: Ceph distance 1320 + Ceph angle 960 + FeTA24 distance 720 = 3,000 records
AD: list[tuple[str, str, str, int, int]] = [
    ("Ceph-Biometrics-400", "distance", "L-{}", 11, 120),
    ("Ceph-Biometrics-400", "angle", "A-{}", 8, 120),
    ("FeTA24", "distance", "L-{}", 6, 120),
]
PROMPT = (
    "Task:\nGiven the input medical image: {what}, return the coordinates of the lower-left and upper-right "
    "corner of the bounding box for the {label}.\nFormat requirement:\nThe answer should be four decimal "
    "numbers separated by commas without any units or additional text. The first two numbers are the "
    "coordinates of the lower-left corner and the last two numbers are the coordinates of the upper-right "
    "corner of the bounding box. Use relative coordinates in the image space, where the origin is at the "
    "lower-left corner of the image. Relative coordinates should be values between 0 and 1, representing the "
    "relative positions in the image."
)


def _record(family: str, task: str, config: str, row: int, rng: random.Random, **fields: Any) -> dict[str, Any]:
    height, width = rng.choice([(512, 512), (256, 256), (320, 260)])
    if family == "detection":
        r0, c0 = rng.randrange(0, height - 40), rng.randrange(0, width - 40)
        r1, c1 = r0 + rng.randrange(10, 40), c0 + rng.randrange(10, 40)
        target = [c0 / width, (height - r1) / height, c1 / width, (height - r0) / height]
        jitter = [v + rng.uniform(-0.05, 0.05) for v in target]
        response = ", ".join(f"{v:.4f}" for v in jitter) if rng.random() > 0.03 else "I cannot determine it."
    elif family == "tl":
        major = rng.uniform(5, 80)
        target = [major, major * rng.uniform(0.3, 1.0)]
        response = f"{target[0] * rng.uniform(0.5, 1.5):.2f}, {target[1] * rng.uniform(0.5, 1.5):.2f}"
    else:
        target = [round(rng.uniform(0.05, 120), 3)]
        response = f"The measurement is {target[0] * rng.uniform(0.7, 1.3):.2f}"
    return {
        "schema": 1, "task": task, "family": family, "config": config, "row": row,
        "dataset": fields["dataset"], "taskID": "01", "slice_dim": fields["plane"], "slice_idx": row % 97,
        "label": 1, "label_name": fields.get("label_name"),
        "image_file_rel": f"Images/case_{row // 20:05d}.nii.gz", "image_size_2d": [height, width],
        "modality": fields.get("modality"), "region_label": fields.get("region_label"),
        "region_modality": fields.get("region_modality"), "metric_type": fields.get("metric_type"),
        "metric_key": fields.get("metric_key"), "prompt_sha1": f"{rng.getrandbits(160):040x}",
        "geometry": None, "target": target, "response": response, "truncated": False, "generation_error": None,
        "parsed": None, "success": True, "metrics": {}, "excluded": False, "exclusion_reason": None,
        "multicluster_listed": False if family == "tl" else None, "settings": SETTINGS,
        "settings_id": "0123456789ab",
        "model": {"adapter": "medvision_qwen2_5_vl", "pretrained": "Qwen/Qwen2.5-VL-7B-Instruct",
                  "backend": "vllm", "generation": {"max_new_tokens": 1024, "temperature": 0.0}},
        "data_root_kind": "real", "multi_instance": False, "plan_version": "1.0.0", "plugin_version": "0.1.0",
    }  # fmt: skip


def _sample_line(doc_id: int, record: dict[str, Any]) -> str:
    """One samples-file line as lmms-eval 0.7.3 writes it (prompt, response, metric entries, mv_record)."""
    entry = {"value": 0.5, "success": True, "excluded": False}
    names = ("iou", "f1", "precision", "recall", "success_rate", "iou_ge_050", "mae_coord")
    if record["family"] != "detection":
        names = ("mae", "mre", "success_rate", "mre_lt_010")
    line = {
        "doc_id": doc_id,
        "target": json.dumps(record["target"]),
        "filtered_resps": record["response"],
        "token_counts": [None],
        "doc_hash": "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b",
        **{name: entry for name in names},
        "mv_record": record,
        "input": PROMPT.format(what="abdominal CT scan", label=record["label_name"] or "target"),
    }
    return json.dumps(line)


def write_synthetic_run(out_dir: Path, records: int = 30_000, seed: int = 0) -> int:
    """Write samples files holding ``records`` records (24,000 : 3,000 : 3,000 across the three families at
    30,000, scaled otherwise) into ``out_dir``; returns the number written."""
    rng = random.Random(seed)
    scale = records / 30_000
    jobs: list[tuple[str, str, str, int, dict[str, Any]]] = []
    for dataset, label, modality, plane in DETECTION:
        task = f"medvision_detection_{dataset.lower()}_{plane}"
        fields = {"dataset": dataset, "plane": plane, "label_name": label, "modality": modality,
                  "region_label": label, "region_modality": modality}  # fmt: skip
        jobs.append(("detection", task, f"{dataset}_BoxSize_Task01_{plane}_Test", round(1000 * scale), fields))
    for dataset, label, modality, plane in TL:
        task = f"medvision_tl_{dataset.lower()}"
        fields = {"dataset": dataset, "plane": plane, "label_name": label, "modality": modality}
        jobs.append(("tl", task, f"{dataset}_TumorLesionSize_Task01_Axial_Test", round(500 * scale), fields))
    for dataset, kind, key, keys, per_key in AD:
        for index in range(keys):
            task = f"medvision_ad_{dataset.lower()}_{kind}_{index}"
            fields = {"dataset": dataset, "plane": 0, "metric_type": kind, "metric_key": key.format(index + 1)}
            config = f"{dataset}_BiometricsFromLandmarks_{kind.capitalize()}_Task0{index}_Sagittal_Test"
            jobs.append(("ad", task, config, round(per_key * scale), fields))
    written = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for family, task, config, count, fields in jobs:
        path = out_dir / f"{TIMESTAMP}_samples_{task}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for row in range(count):
                handle.write(_sample_line(row, _record(family, task, config, row, rng, **fields)) + "\n")
        written += count
    return written


def _time_command(command: list[str], repeats: int) -> tuple[list[float], subprocess.CompletedProcess[str]]:
    timings: list[float] = []
    proc: subprocess.CompletedProcess[str] | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        timings.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    assert proc is not None
    return timings, proc


def main(argv: list[str] | None = None) -> int:
    """Generate, time, report; exit 1 when the median exceeds the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--extra", default="", help="extra leaderboard arguments as one string: --extra='--ci 0.95'")
    args = parser.parse_args(argv)
    extra = shlex.split(args.extra)
    script = Path(sys.executable).with_name("medvision-eval")
    if not script.exists():
        raise SystemExit(f"{script} not found; install the package into this interpreter's environment")
    with tempfile.TemporaryDirectory(prefix="bench-leaderboard-") as tmp:
        run_dir = Path(tmp) / "run"
        start = time.perf_counter()
        count = write_synthetic_run(run_dir, args.records)
        size_mb = sum(p.stat().st_size for p in run_dir.iterdir()) / 1e6
        print(f"wrote {count} records in {len(list(run_dir.iterdir()))} files ({size_mb:.1f} MB) "
              f"in {time.perf_counter() - start:.1f} s")  # fmt: skip
        command = [str(script), "leaderboard", str(run_dir), "--format", "json", *extra]
        timings, proc = _time_command(command, args.repeats)
        board = json.loads(proc.stdout)
        samples = sum(m["records"] for m in board["models"])
    median = statistics.median(timings)
    print(f"command: medvision-eval leaderboard RUN --format json {' '.join(extra)}".rstrip())
    print(f"records read: {samples}; runs: {', '.join(f'{t:.2f}' for t in timings)} s")
    print(f"median: {median:.2f} s (goal <= {GOAL_S:.1f} s)")
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()}; "
          f"python {platform.python_version()}")  # fmt: skip
    return 0 if median <= GOAL_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
