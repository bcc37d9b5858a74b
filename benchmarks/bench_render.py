"""Image + prompt preparation throughput: this reader against the v1 pipeline's way (issue 3, docs/reference.md §1.11).

Writes (into a temp folder, or --root) a KiTS23-like root of CT volumes (512 x 512 x depth int16, gzip NIfTI,
RAS+, 0.78 x 0.78 x 2.5 mm) with a T/L biometry plan holding one row per axial slice, then times, on one core:

* ours: `hooks.doc_to_visual` + `hooks.doc_to_text` (MEDVISION_GEOMETRY=qwen_smart_resize) over N docs in loader
  order, cold (volume cache emptied first, so each volume is decoded once) and warm (volumes already cached);
* naive: what the official v1 code did per sample: `nib.load(...).get_fdata()` in doc_to_visual and again in
  doc_to_text, slice, min-max, PIL RGB, prompt. Its cost per doc does not depend on N, so it runs on fewer docs.

Prints slices/s (median of --repeats) for each and the ratios. Not collected by pytest.
Usage: .venv/bin/python benchmarks/bench_render.py [--root DIR] [--volumes 8] [--depth 100] [--docs 800]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

DATASET = "KiTS23"
CONFIG = "KiTS23_TumorLesionSize_Task01_Axial_Test"
SPACING = (0.78, 0.78, 2.5)
GEOMETRY = "qwen_smart_resize"
MANIFEST = "bench_manifest.json"


def pin_one_core() -> str:
    """Restrict this process to one CPU (first allowed); returns a description."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity); BLAS/OpenMP threads = 1"


def _gzip_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps(obj).encode(), mtime=0))


def _ct_volume(rng: np.random.Generator, depth: int, index: int) -> np.ndarray:
    """CT-like int16 HU volume: air, a soft-tissue body ellipse, a bright spine, +-20 HU noise."""
    rows, cols = np.ogrid[:512, :512]
    body = ((rows - 256) / 200.0) ** 2 + ((cols - 256) / 160.0) ** 2 <= 1.0
    spine = ((rows - 330) / 25.0) ** 2 + ((cols - 256) / 25.0) ** 2 <= 1.0
    plane = np.where(body, 40, -1000).astype(np.int16)
    plane[spine] = 700
    vol = np.repeat(plane[:, :, None], depth, axis=2)
    vol += rng.integers(-20, 21, size=vol.shape, dtype=np.int16)
    vol[200:240, 300:350, :] += np.int16(60 + index)  # a "kidney tumour" block
    return vol


def generate_root(root: Path, n_volumes: int, depth: int) -> Path:
    """Write the benchmark root (skipped when a matching manifest is already there)."""
    manifest = root / MANIFEST
    want = {"volumes": n_volumes, "depth": depth, "version": 1}
    if manifest.is_file() and json.loads(manifest.read_text()) == want:
        return root
    folder = root / "Datasets" / DATASET
    rng = np.random.default_rng(0)
    cases = []
    for i in range(n_volumes):
        image_rel = f"Images/case_{i:05d}.nii.gz"
        affine = np.diag([*SPACING, 1.0])
        (folder / "Images").mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(_ct_volume(rng, depth, i), affine), folder / image_rel)
        metric = {"metric_type": "distance", "metric_map_name": "lines_map", "metric_unit": "mm"}
        entries = [
            {
                "slice_idx": k,
                "slice_profile": [
                    [
                        dict(metric, metric_key="L-1-2", metric_value=39.0),
                        dict(metric, metric_key="L-3-4", metric_value=31.2),
                    ]
                ],
            }
            for k in range(depth)
        ]
        cases.append(
            {
                "case_ID": f"case_{i:05d}",
                "image_file": image_rel,
                "mask_file": f"Masks/case_{i:05d}.nii.gz",
                "landmark_file": f"Landmarks/case_{i:05d}.json.gz",
                "image_file_info": {"voxel_size": list(SPACING), "array_size": [512, 512, depth]},
                "slice_profiles_x": [],
                "slice_profiles_y": [],
                "slice_profiles_z": entries,
            }
        )
        _gzip_json(folder / f"Landmarks/case_{i:05d}.json.gz", {"slices": []})
        print(f"  wrote volume {i + 1}/{n_volumes}", file=sys.stderr)
    task = {
        "task_ID": "01",
        "task_type": "Tumor-Lesion-Size",
        "image_modality": "CT",
        "image_description": "abdominal CT scan",
        "labels_map": {"1": "kidney", "2": "kidney tumor"},
        "target_label": 2,
        "landmarks_map": {"P1": "a", "P2": "b", "P3": "c", "P4": "d"},
        "lines_map": {
            "L-1-2": {"name": "major axis", "element_map_name": "landmarks_map", "element_keys": ["P1", "P2"]},
            "L-3-4": {"name": "minor axis", "element_map_name": "landmarks_map", "element_keys": ["P3", "P4"]},
        },
        "angles_map": {},
        "biometrics_map": [],
        "train_cases": [],
        "test_cases": cases,
    }
    plan = {"dataset_info": {"dataset": DATASET}, "tasks_number": 1, "tasks": [task]}
    _gzip_json(folder / "benchmark_plan_biometry_v1.0.0.json.gz", plan)
    manifest.write_text(json.dumps(want))
    return root


# ------------------------------------------------------------------------------- the v1 way, per sample
def naive_visual(doc: dict[str, Any]) -> Image.Image:
    """v1 doc_to_visual: full load as float64, slice, float32, min-max, grey -> RGB."""
    vol = nib.load(doc["image_file"]).get_fdata()
    img = vol[:, :, int(doc["slice_idx"])].astype(np.float32)
    lo, hi = img.min(), img.max()
    gray = ((img - lo) / (hi - lo) * 255).astype(np.uint8) if hi > lo else np.zeros(img.shape, np.uint8)
    return Image.fromarray(gray, "L").convert("RGB")


def naive_text(doc: dict[str, Any]) -> str:
    """v1 doc_to_text: the volume is loaded again to get the slice size and header spacing."""
    from medvision_tasks.geometry import parse_geometry, perceive, stated_pixel_size
    from medvision_tasks.prompts import build_prompt

    img = nib.load(doc["image_file"])
    data = img.get_fdata()
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    h, w = data.shape[0], data.shape[1]
    perceived = perceive(parse_geometry(GEOMETRY), h, w)
    pw, ph = stated_pixel_size((zooms[0], zooms[1]), (h, w), perceived.content_hw)
    canvas_h, canvas_w = perceived.canvas_hw
    return build_prompt(doc, "v1", (pw, ph), (canvas_w, canvas_h))


# ----------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="benchmark root (generated once, reused); default: a temp folder")
    parser.add_argument("--volumes", type=int, default=8)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--docs", type=int, default=800, help="docs timed with this reader (loader order)")
    parser.add_argument("--naive-docs", type=int, default=6, help="docs timed with the v1 way per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    pinned = pin_one_core()
    os.environ["MEDVISION_GEOMETRY"] = GEOMETRY
    os.environ["MEDVISION_VOLUME_CACHE_MB"] = str(max(512, args.volumes * 512 * 512 * args.depth * 2 // 2**20 + 64))

    from medvision_tasks import hooks, render, settings
    from medvision_tasks.row_cache import rows_for_config

    tmp = None
    if args.root:
        root = Path(args.root)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="medvision-bench-")
        root = Path(tmp.name)
    print(f"generating {args.volumes} CT volumes 512x512x{args.depth} int16 in {root} ...", file=sys.stderr)
    generate_root(root, args.volumes, args.depth)
    rows = rows_for_config(root, CONFIG)
    docs = [dict(r, mv_task="bench", mv_variant={}) for r in rows[: args.docs]]
    n_vol = len({d["image_file"] for d in docs})
    size_mib = sum(p.stat().st_size for p in (root / "Datasets" / DATASET / "Images").glob("*.nii.gz")) / 2**20

    # same output both ways
    settings.reset()
    render.volume_cache().clear()
    for doc in docs[:2]:
        assert np.array_equal(np.asarray(hooks.doc_to_visual(doc)[0]), np.asarray(naive_visual(doc)))
        assert hooks.doc_to_text(doc) == naive_text(doc), "naive prompt differs from the reader's"

    cold, warm, naive = [], [], []
    for _ in range(args.repeats):
        settings.reset()
        render.volume_cache().clear()
        t0 = time.perf_counter()
        for doc in docs:
            hooks.doc_to_visual(doc)
            hooks.doc_to_text(doc)
        cold.append(len(docs) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for doc in docs:
            hooks.doc_to_visual(doc)
            hooks.doc_to_text(doc)
        warm.append(len(docs) / (time.perf_counter() - t0))
    loads = render.volume_cache().loads  # of the last cold + warm pass
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for doc in docs[: args.naive_docs]:
            naive_visual(doc)
            naive_text(doc)
        naive.append(args.naive_docs / (time.perf_counter() - t0))
    if tmp is not None:
        tmp.cleanup()

    c, w, n = statistics.median(cold), statistics.median(warm), statistics.median(naive)
    print(
        f"machine: {platform.processor() or platform.machine()}, {pinned}; python {platform.python_version()}, "
        f"numpy {np.__version__}, nibabel {nib.__version__}"
    )
    print(
        f"data: {args.volumes} volumes 512x512x{args.depth} int16 .nii.gz ({size_mib / args.volumes:.1f} MiB each), "
        f"{len(docs)} T/L docs over {n_vol} volumes in loader order; geometry {GEOMETRY}"
    )
    print(f"ours, cold (each volume decoded once, {loads} loads per pass): {c:8.1f} slices/s")
    print(f"ours, warm (volumes cached):                              {w:8.1f} slices/s")
    print(f"naive v1 (2 full loads per doc, {args.naive_docs} docs per repeat):          {n:8.2f} slices/s")
    print(f"ratio cold/naive: {c / n:.0f}x   ratio warm/naive: {w / n:.0f}x   (median of {args.repeats} repeats)")
    # issue 3: ratio >= 50, and >= 200 slices/s for 512^2 slices of a cached volume
    print(
        f"goal ratio >= 50 (cold): {'met' if c / n >= 50 else 'NOT met'}; "
        f">= 200 slices/s from cached volumes (warm): {'met' if w >= 200 else 'NOT met'}; "
        f"cold >= 200 slices/s: {'met' if c >= 200 else 'not met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
