"""Deterministic phantom MedVision data root for the demo tasks (docs/reference.md §2.7).

``generate_phantom(out_dir, seed)`` writes a small synthetic root in the official on-disk layout
(docs/reference.md §1.1–§1.3); ``ensure_demo_root()`` returns the cached root and builds it once, atomically.
The same seed gives byte-identical files: gzip headers carry ``mtime=0`` and no file name, and JSON
is written in a fixed key order.

Layout (paths in plans are relative to ``<root>/Datasets/<dataset>/``)::

    Datasets/KiTS23/               CT, int16 HU; labels 1 kidney, 2 kidney tumor
        benchmark_plan_{detection,segmentation,biometry}_v1.0.0.json.gz
        benchmark_plan_biometry_v1.1.0.json.gz     T/L values at pixel centres, adds n_total_clusters
        multi_cluster_samples_v1.0.0_to_v1.1.0.json
        Images/ Masks/ Landmarks-Label2-v1.0.0/ Landmarks-Label2-v1.1.0/
    Datasets/OAIZIB-CM/            knee MRI, float32; labels 1 femur, 2 tibia; detection plan only
        OAIZIB-CM/Images/ OAIZIB-CM/Masks/        (a sub-dataset folder)
    Datasets/Ceph-Biometrics-400/  X-ray, uint8 volumes of shape (1, 193, 240) at 0.1 mm; biometry plan
        Images/ Landmarks/
    Datasets/FeTA24/               fetal brain MRI, float32; biometry plan, empty modality and description
        Images-reoriented/ Landmarks/
    demo_manifest.json

Volumes are NIfTI-1 with a diagonal RAS+ affine (voxel size on the diagonal, image centre at 0).

Landmark files (gzip JSON):

* A/D (``Landmarks/<case>.json.gz``): ``{"P1": [i, j, k], ...}``, integer voxel indices into the stored
  array. GT distance = ‖(index difference) × voxel size‖ in mm; GT angle =
  ``degrees(arccos(|A·B| / (‖A‖‖B‖)))`` of the two physical line vectors (docs/reference.md §1.8).
* T/L (``Landmarks-Label2-v<X.Y.Z>/<case>.json.gz``): ``{"slices": [{"slice_dim", "slice_idx", "ellipses":
  [{"P1", "P2", "P3", "P4"}]}]}``, continuous voxel coordinates of the ellipse axis end points; P1–P2 is
  the major axis ("L-1-2"), P3–P4 the minor axis ("L-3-4"). v1.0.0 places them on pixel edges, so an axis
  length is (pixel extent) × spacing; v1.1.0 places them on the outermost pixel centres, so an axis
  length is (pixel extent − 1) × spacing.

Every GT number in the plans is measured from what was written: detection boxes from 2-D connected
components (``scipy.ndimage.label``, default 4-connectivity) of each label on each axial mask slice;
T/L axes from the components of the target label with at least ``cluster_size_threshold`` pixels;
A/D values from the landmark coordinates and the plan voxel size.

``demo_manifest.json`` holds ``demo_version``, ``seed``, ``plan_version`` and these counts, computed
from the shapes the generator decided to draw (not by reading the plans back):

* ``configs``: ``{<official Test config name>: {"test": N, "train": N}}``, single-instance rows after the
  docs/reference.md §1.4 filters at planner version 1.0.0; ``train`` counts the matching ``_Train`` config;
* ``configs_unfiltered``: the same with the detection and T/L filters switched off;
* ``configs_latest``: the same as ``configs`` with the planner version ceiling at ``latest``;
* ``regions``: detection Test rows per leaderboard region key;
* ``planted``: the planted edge cases (dropped rows and why, constant slices, the multi-cluster slice,
  near-zero angles, the version-ceiling plans).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from medvision_metrics.scoring import MULTICLUSTER_FILE
from scipy import ndimage

from .notices import warn

DEMO_VERSION = "1"
MANIFEST_NAME = "demo_manifest.json"
DEFAULT_CACHE_DIR = "~/.cache/medvision_eval"

PLAN_VERSION = "1.0.0"
TL_LATER_VERSION = "1.1.0"
MIN_BOX_PX = 10  # docs/reference.md §1.4: a detection row is kept only with one box of at least 10 x 10 px
CLUSTER_SIZE_THRESHOLD_PX = 10  # T/L clusters with fewer pixels on a slice get no ellipse
GZIP_LEVEL = 6

_KITS_LABELS = {"1": "kidney", "2": "kidney tumor"}
_OAIZIB_LABELS = {"1": "femur", "2": "tibia"}
_KITS_REGIONS = {1: "Kidney @ CT (A)", 2: "Kidney Tumor/Lesion @ CT (A)"}
_OAIZIB_REGION = "Knee @ MR (A)"
_TL_TARGET_LABEL = 2
_PLANE_NAMES = ("Sagittal", "Coronal", "Axial")
_PROFILE_KEYS = ("slice_profiles_x", "slice_profiles_y", "slice_profiles_z")


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def generate_phantom(out_dir: str | Path, seed: int = 0) -> Path:
    """Write the phantom data root into ``out_dir`` (created if missing) and return its path."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    child_seeds = np.random.SeedSequence(seed).spawn(4)
    rngs = [np.random.default_rng(s) for s in child_seeds]
    results = [
        _write_kits23(root, rngs[0]),
        _write_oaizib(root, rngs[1]),
        _write_ceph(root, rngs[2]),
        _write_feta24(root, rngs[3]),
    ]
    manifest: dict[str, Any] = {
        "demo_version": DEMO_VERSION,
        "seed": seed,
        "plan_version": PLAN_VERSION,
        "configs": {},
        "configs_unfiltered": {},
        "configs_latest": {},
        "regions": {},
        "planted": {
            "dropped_rows": [],
            "dropped_rows_latest": [],
            "constant_slices": [],
            "multi_cluster": [],
            "near_zero_angles": [],
            "version_ceiling": [],
        },
    }
    for result in results:
        for key in ("configs", "configs_unfiltered", "configs_latest", "regions"):
            manifest[key].update(result[key])
        for key, items in result["planted"].items():
            manifest["planted"][key].extend(items)
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (root / MANIFEST_NAME).write_bytes(text.encode("utf-8"))
    return root


def demo_root_path() -> Path:
    """Where the demo root lives: ``$MEDVISION_DEMO_DIR``, else ``$MEDVISION_CACHE_DIR/demo/<version>``."""
    from .settings import cache_dir, read_env

    demo_dir = read_env("demo_dir")
    if demo_dir:
        return Path(demo_dir).expanduser()
    return cache_dir() / "demo" / DEMO_VERSION


def ensure_demo_root() -> Path:
    """Return the demo data root, generating it on first use (temp sibling folder, then atomic rename).

    A finished root is recognised by its ``demo_manifest.json``. If another process finishes first,
    its root is used and ours is discarded.
    """
    target = demo_root_path()
    manifest = target / MANIFEST_NAME
    if manifest.is_file():
        _warn_on_version_mismatch(manifest)
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(
            f"{target}: exists but holds no {MANIFEST_NAME}, so it is not a finished demo root; "
            "remove it or point MEDVISION_DEMO_DIR elsewhere"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        generate_phantom(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not manifest.is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _warn_on_version_mismatch(manifest: Path) -> None:
    try:
        found = json.loads(manifest.read_text(encoding="utf-8")).get("demo_version")
    except (OSError, ValueError):
        return
    if found != DEMO_VERSION:
        warn(
            f"{manifest}: demo_version {found!r} differs from this plugin's {DEMO_VERSION!r}; "
            "delete the folder to regenerate it",
            stacklevel=3,
        )


# --------------------------------------------------------------------------------------------------
# File writing
# --------------------------------------------------------------------------------------------------


def gzip_bytes(raw: bytes) -> bytes:
    """gzip with mtime 0 and no file name in the header, so equal input gives equal bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="", compresslevel=GZIP_LEVEL) as gz:
        gz.write(raw)
    return buf.getvalue()


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data`, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_json_gz(path: Path, obj: Any) -> None:
    """Deterministic gzip JSON (plans, landmark files)."""
    write_bytes(path, gzip_bytes(json.dumps(obj).encode("utf-8")))


def ras_affine(shape: tuple[int, ...], spacing: tuple[float, ...]) -> np.ndarray:
    """Diagonal RAS+ affine centred on the volume."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [round(-(n - 1) / 2 * s, 3) + 0.0 for n, s in zip(shape, spacing)]
    return affine


def write_nifti(path: Path, array: np.ndarray, spacing: tuple[float, ...]) -> dict[str, Any]:
    """Write a gzipped NIfTI-1 with a diagonal RAS+ affine; return the plan's ``image_file_info``."""
    affine = ras_affine(array.shape, spacing)
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    write_bytes(path, gzip_bytes(img.to_bytes()))
    return {
        "voxel_size": [round(float(s), 3) for s in spacing],
        "affine": [[round(float(v), 6) + 0.0 for v in row] for row in affine],
        "orientation": "".join(nib.aff2axcodes(affine)),
        "array_size": [int(n) for n in array.shape],
    }


def _plan(dataset: str, kind: str, version: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "dataset_info": {
            "dataset": dataset,
            "plan_kind": kind,
            "planner_version": version,
            "phantom": True,
            "demo_version": DEMO_VERSION,
        },
        "tasks_number": len(tasks),
        "tasks": tasks,
    }


def _plan_name(kind: str, version: str) -> str:
    return f"benchmark_plan_{kind}_v{version}.json.gz"


def _config(dataset: str, annotation: str, plane: int, split: str, metric: str | None = None) -> str:
    token = f"_{metric}" if metric else ""
    return f"{dataset}_{annotation}{token}_Task01_{_PLANE_NAMES[plane]}_{split}"


# --------------------------------------------------------------------------------------------------
# Drawn shapes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ellipse:
    """Axis-aligned ellipse on a 2-D slice: integer centre and semi-axes, both as (row, col) pixels."""

    center_rc: tuple[int, int]
    semi_axes_rc: tuple[int, int]

    @property
    def dimensions(self) -> tuple[int, int]:
        """Pixel extent (rows, cols) of the drawn ellipse."""
        return (2 * self.semi_axes_rc[0] + 1, 2 * self.semi_axes_rc[1] + 1)

    @property
    def n_pixels(self) -> int:
        """Number of pixels the ellipse covers."""
        a, b = self.semi_axes_rc
        return int(_Ellipse((a, b), (a, b)).raster((2 * a + 1, 2 * b + 1)).sum())

    def raster(self, shape_hw: tuple[int, int]) -> np.ndarray:
        """Boolean pixel mask of the ellipse on a canvas of ``shape_hw``; it must fit inside."""
        (r0, c0), (a, b) = self.center_rc, self.semi_axes_rc
        if r0 - a < 0 or c0 - b < 0 or r0 + a >= shape_hw[0] or c0 + b >= shape_hw[1]:
            raise RuntimeError(f"phantom ellipse {self} leaves the {shape_hw} canvas")
        rows, cols = np.ogrid[: shape_hw[0], : shape_hw[1]]
        return ((rows - r0) / a) ** 2 + ((cols - c0) / b) ** 2 <= 1.0


@dataclass
class _LabelledCase:
    """A case drawn as ellipses per axial slice and label."""

    case_id: str
    slices: dict[int, dict[int, list[_Ellipse]]]
    constant_slices: dict[int, int] = field(default_factory=dict)
    plants: list[dict[str, Any]] = field(default_factory=list)


def _paint_mask(shape: tuple[int, int, int], case: _LabelledCase) -> np.ndarray:
    """Rasterise the case into a uint8 label volume; shapes never overlap or touch within a label."""
    mask = np.zeros(shape, dtype=np.uint8)
    for z in sorted(case.slices):
        plane = mask[:, :, z]
        for label in sorted(case.slices[z]):
            shapes = case.slices[z][label]
            for shape2d in shapes:
                pixels = shape2d.raster(plane.shape)
                if plane[pixels].any():
                    raise RuntimeError(f"phantom {case.case_id} slice {z}: shapes overlap")
                plane[pixels] = label
            if ndimage.label(plane == label)[1] != len(shapes):
                raise RuntimeError(f"phantom {case.case_id} slice {z} label {label}: shapes touch")
    return mask


def _profile_scale(z: int, first: int, count: int) -> float:
    """Ellipsoid-like scale in [0.45, 1] along a run of slices."""
    t = (z - (first + (count - 1) / 2)) / (count / 2)
    return max(0.45, math.sqrt(max(0.0, 1.0 - t * t)))


# --------------------------------------------------------------------------------------------------
# Measurements (GT from what was written)
# --------------------------------------------------------------------------------------------------


def _components(slice2d: np.ndarray, label: int) -> list[tuple[int, int, int, int, int]]:
    """Connected components of one label: (row_min, col_min, row_max, col_max, n_pixels), scan order."""
    labelled, n = ndimage.label(slice2d == label)
    counts = np.bincount(labelled.ravel(), minlength=n + 1)
    out = []
    for k, found in enumerate(ndimage.find_objects(labelled), start=1):
        rows, cols = found
        out.append((rows.start, cols.start, rows.stop - 1, cols.stop - 1, int(counts[k])))
    return out


def _detection_profiles(mask: np.ndarray, voxel_size: list[float]) -> list[dict[str, Any]]:
    """Axial detection slice entries: every slice with a label, labels ascending, boxes in scan order."""
    sh, sw = voxel_size[0], voxel_size[1]
    height, width = mask.shape[0], mask.shape[1]
    entries = []
    for z in range(mask.shape[2]):
        plane = mask[:, :, z]
        items = []
        for label in sorted(int(v) for v in np.unique(plane) if v):
            bboxes = []
            for r0, c0, r1, c1, n_pixels in _components(plane, label):
                dims = [r1 - r0 + 1, c1 - c0 + 1]
                bboxes.append(
                    {
                        "min_coords": [r0, c0],
                        "max_coords": [r1, c1],
                        "center_coords": [(r0 + r1) / 2, (c0 + c1) / 2],
                        "dimensions": dims,
                        "sizes": [round(dims[0] * sh, 4), round(dims[1] * sw, 4)],
                        "mask_image_ratio": round(n_pixels / (height * width), 6),
                    }
                )
            items.append({"label": label, "bboxes": bboxes})
        if items:
            entries.append({"slice_idx": z, "slice_profile": items})
    return entries


def _segmentation_profiles(mask: np.ndarray) -> list[dict[str, Any]]:
    """Axial segmentation slice entries: pixel count and image ratio per label."""
    entries = []
    for z in range(mask.shape[2]):
        plane = mask[:, :, z]
        items = [
            {
                "label": int(label),
                "pixel_count": int((plane == label).sum()),
                "mask_image_ratio": round(int((plane == label).sum()) / plane.size, 6),
            }
            for label in np.unique(plane)
            if label
        ]
        if items:
            entries.append({"slice_idx": z, "slice_profile": items})
    return entries


def tl_metric(key: str, value: float) -> dict[str, Any]:
    """One T/L axis metric dict of a biometry plan slice profile (L-1-2 major, L-3-4 minor), in mm."""
    return {
        "metric_type": "distance",
        "metric_map_name": "lines_map",
        "metric_key": key,
        "metric_value": value,
        "metric_unit": "mm",
    }


def _tl_profiles(
    mask: np.ndarray, voxel_size: list[float], version: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Axial T/L slice entries and landmark records for the target label.

    v1.0.0 axis length = pixel extent × spacing (end points on pixel edges); v1.1.0 = (extent − 1) ×
    spacing (end points on pixel centres) and the entry adds ``n_total_clusters``.
    """
    later = version != PLAN_VERSION
    edge = 0.0 if later else 0.5
    sh, sw = voxel_size[0], voxel_size[1]
    entries, landmark_slices = [], []
    for z in range(mask.shape[2]):
        comps = _components(mask[:, :, z], _TL_TARGET_LABEL)
        fitted = [c for c in comps if c[4] >= CLUSTER_SIZE_THRESHOLD_PX]
        if not fitted:
            continue
        profile, ellipses = [], []
        for r0, c0, r1, c1, _ in fitted:
            extent = (r1 - r0 + (0 if later else 1), c1 - c0 + (0 if later else 1))
            length_rows, length_cols = round(extent[0] * sh, 4), round(extent[1] * sw, 4)
            rc, cc = (r0 + r1) / 2, (c0 + c1) / 2
            along_rows = ([r0 - edge, cc, z], [r1 + edge, cc, z])
            along_cols = ([rc, c0 - edge, z], [rc, c1 + edge, z])
            if length_rows >= length_cols:
                major, minor, p12, p34 = length_rows, length_cols, along_rows, along_cols
            else:
                major, minor, p12, p34 = length_cols, length_rows, along_cols, along_rows
            profile.append([tl_metric("L-1-2", major), tl_metric("L-3-4", minor)])
            ellipses.append({"P1": p12[0], "P2": p12[1], "P3": p34[0], "P4": p34[1]})
        entry: dict[str, Any] = {"slice_idx": z, "slice_profile": profile}
        if later:
            entry["n_total_clusters"] = len(comps)
        entries.append(entry)
        landmark_slices.append({"slice_dim": 2, "slice_idx": z, "ellipses": ellipses})
    return entries, landmark_slices


def _distance_mm(p: list[int], q: list[int], voxel_size: list[float]) -> float:
    diff = (np.asarray(q, dtype=np.float64) - np.asarray(p, dtype=np.float64)) * np.asarray(voxel_size)
    return float(np.linalg.norm(diff))


def _angle_deg(
    line_a: tuple[list[int], list[int]], line_b: tuple[list[int], list[int]], voxel_size: list[float]
) -> float:
    vox = np.asarray(voxel_size, dtype=np.float64)
    va = (np.asarray(line_a[1], dtype=np.float64) - np.asarray(line_a[0], dtype=np.float64)) * vox
    vb = (np.asarray(line_b[1], dtype=np.float64) - np.asarray(line_b[0], dtype=np.float64)) * vox
    cosine = abs(float(va @ vb)) / (float(np.linalg.norm(va)) * float(np.linalg.norm(vb)))
    return math.degrees(math.acos(min(1.0, cosine)))


# --------------------------------------------------------------------------------------------------
# Expected counts (from the drawn shapes, independent of the plans)
# --------------------------------------------------------------------------------------------------


def _detection_row_kept(shapes: list[_Ellipse]) -> bool:
    return len(shapes) == 1 and min(shapes[0].dimensions) >= MIN_BOX_PX


def _count_detection(cases: list[_LabelledCase]) -> tuple[dict[int, int], dict[int, int]]:
    """Per label: (rows kept by the §1.4 filter, all rows)."""
    kept: dict[int, int] = {}
    total: dict[int, int] = {}
    for case in cases:
        for by_label in case.slices.values():
            for label, shapes in by_label.items():
                total[label] = total.get(label, 0) + 1
                kept[label] = kept.get(label, 0) + int(_detection_row_kept(shapes))
    return kept, total


def _count_tl(cases: list[_LabelledCase]) -> dict[str, int]:
    """T/L rows: all, kept at v1.0.0 (one fitted ellipse), kept at v1.1.0 (one cluster)."""
    counts = {"all": 0, "v1.0.0": 0, "latest": 0}
    for case in cases:
        for by_label in case.slices.values():
            shapes = by_label.get(_TL_TARGET_LABEL, [])
            fitted = [s for s in shapes if s.n_pixels >= CLUSTER_SIZE_THRESHOLD_PX]
            if not fitted:
                continue
            counts["all"] += 1
            counts["v1.0.0"] += int(len(fitted) == 1)
            counts["latest"] += int(len(shapes) == 1)
    return counts


def _split_counts(test: int, train: int) -> dict[str, int]:
    return {"test": test, "train": train}


# --------------------------------------------------------------------------------------------------
# KiTS23: CT detection, segmentation and T/L (biometry v1.0.0 and v1.1.0)
# --------------------------------------------------------------------------------------------------

_KITS_SHAPE = (64, 56, 40)
_KITS_SPACING = (0.7, 0.9, 3.0)
_KITS_CONSTANT_HU = 35


def _kits23_case(rng: np.random.Generator, case_id: str, planted: bool) -> _LabelledCase:
    """Kidney on 30 slices and a separate tumour on 28; planted cases add the filter edge cases."""
    first = 4 + int(rng.integers(0, 3))
    kidney_rc = (22 + int(rng.integers(-2, 3)), 18 + int(rng.integers(-2, 3)))
    tumor_rc = (34 + int(rng.integers(-1, 2)), 41 + int(rng.integers(-1, 2)))
    slices: dict[int, dict[int, list[_Ellipse]]] = {}
    for z in range(first, first + 30):
        scale = _profile_scale(z, first, 30)
        semi = (max(5, round(9 * scale)), max(5, round(8 * scale) + int(rng.integers(0, 2))))
        slices[z] = {1: [_Ellipse(kidney_rc, semi)]}
    for z in range(first + 1, first + 29):
        scale = _profile_scale(z, first + 1, 28)
        semi = (max(5, round(7 * scale)), max(5, round(6 * scale) + int(rng.integers(0, 2))))
        slices[z][2] = [_Ellipse(tumor_rc, semi)]
    case = _LabelledCase(case_id, slices)
    if not planted:
        return case
    z = first + 5
    slices[z][1].append(_Ellipse((47, 17), (5, 5)))
    case.plants.append({"slice_idx": z, "label": 1, "what": "two_components"})
    z = first + 7
    slices[z][1] = [_Ellipse(kidney_rc, (2, 8))]
    case.plants.append({"slice_idx": z, "label": 1, "what": "small_box"})
    z = first + 11
    case.constant_slices[z] = _KITS_CONSTANT_HU
    z = first + 15
    slices[z][2] = [_Ellipse((30, 42), (4, 4)), _Ellipse((48, 44), (4, 4))]
    case.plants.append({"slice_idx": z, "label": 2, "what": "two_ellipses"})
    z = first + 19
    slices[z][2].append(_Ellipse((54, 46), (1, 1)))
    case.plants.append({"slice_idx": z, "label": 2, "what": "multi_cluster"})
    return case


def _kits23_image(rng: np.random.Generator, mask: np.ndarray, constant_slices: dict[int, int]) -> np.ndarray:
    """int16 HU: air -1000..-900, body fat about -100, kidney about 30, tumour about 60."""
    vol = rng.integers(-1000, -899, size=mask.shape, dtype=np.int16)
    body2d = _Ellipse((32, 28), (29, 26)).raster(mask.shape[:2])
    body = np.broadcast_to(body2d[:, :, None], mask.shape)
    vol[body] = rng.integers(-110, -89, size=int(body.sum()), dtype=np.int16)
    for label, (low, high) in {1: (25, 36), 2: (55, 66)}.items():
        where = mask == label
        vol[where] = rng.integers(low, high, size=int(where.sum()), dtype=np.int16)
    for z, value in constant_slices.items():
        vol[:, :, z] = value
    return vol


_KITS_COMMON = {"image_modality": "CT", "image_description": "abdominal CT scan"}
_KITS_TL_EXTRA: dict[str, Any] = {
    "target_label": _TL_TARGET_LABEL,
    "cluster_size_threshold": CLUSTER_SIZE_THRESHOLD_PX,
    "landmarks_map": {
        "P1": "major axis end point 1",
        "P2": "major axis end point 2",
        "P3": "minor axis end point 1",
        "P4": "minor axis end point 2",
    },
    "lines_map": {
        "L-1-2": {"name": "major axis", "element_map_name": "landmarks_map", "element_keys": ["P1", "P2"]},
        "L-3-4": {"name": "minor axis", "element_map_name": "landmarks_map", "element_keys": ["P3", "P4"]},
    },
    "angles_map": {},
    "biometrics_map": [
        {"metric_type": "distance", "metric_map_name": "lines_map", "metric_key": key, "slice_dim": 2}
        for key in ("L-1-2", "L-3-4")
    ],
}
_KITS_DROP_REASONS = {
    "two_components": "label has 2 components on the slice (2 boxes)",
    "small_box": "single box smaller than 10 px in one dimension",
    "two_ellipses": "tumour has 2 components on the slice (2 boxes)",
    "multi_cluster": "tumour has a second, 5-pixel component on the slice (2 boxes)",
}


def _write_kits23_cases(
    folder: Path, rng: np.random.Generator, cases_by_split: dict[str, list[_LabelledCase]]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Write each case's image, mask and landmark files; return the plan case records per kind and split."""
    records: dict[str, dict[str, list[dict[str, Any]]]] = {
        kind: {"test": [], "train": []} for kind in ("detection", "segmentation", "tl_1.0.0", "tl_1.1.0")
    }
    for split, cases in cases_by_split.items():
        for case in cases:
            mask = _paint_mask(_KITS_SHAPE, case)
            image_rel = f"Images/{case.case_id}.nii.gz"
            mask_rel = f"Masks/{case.case_id}.nii.gz"
            info = write_nifti(folder / image_rel, _kits23_image(rng, mask, case.constant_slices), _KITS_SPACING)
            write_nifti(folder / mask_rel, mask, _KITS_SPACING)
            base = {"case_ID": case.case_id, "image_file": image_rel, "mask_file": mask_rel}
            empty = {"slice_profiles_x": [], "slice_profiles_y": []}
            records["detection"][split].append(
                {
                    **base,
                    "image_file_info": info,
                    **empty,
                    "slice_profiles_z": _detection_profiles(mask, info["voxel_size"]),
                }
            )
            records["segmentation"][split].append(
                {**base, "image_file_info": info, **empty, "slice_profiles_z": _segmentation_profiles(mask)}
            )
            for version in (PLAN_VERSION, TL_LATER_VERSION):
                entries, landmark_slices = _tl_profiles(mask, info["voxel_size"], version)
                landmark_rel = f"Landmarks-Label{_TL_TARGET_LABEL}-v{version}/{case.case_id}.json.gz"
                write_json_gz(folder / landmark_rel, {"slices": landmark_slices})
                records[f"tl_{version}"][split].append(
                    {
                        **base,
                        "landmark_file": landmark_rel,
                        "image_file_info": info,
                        **empty,
                        "slice_profiles_z": entries,
                    }
                )
    return records


def _write_kits23_plans(folder: Path, dataset: str, records: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    """The detection and segmentation plans (v1.0.0) and the biometry plan at v1.0.0 and the later version."""

    def task(kind: str, task_type: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "task_ID": "01",
            "task_type": task_type,
            **_KITS_COMMON,
            "labels_map": dict(_KITS_LABELS),
            **(extra or {}),
            "train_cases": records[kind]["train"],
            "test_cases": records[kind]["test"],
        }

    write_json_gz(
        folder / _plan_name("detection", PLAN_VERSION),
        _plan(dataset, "detection", PLAN_VERSION, [task("detection", "Box-Size")]),
    )
    write_json_gz(
        folder / _plan_name("segmentation", PLAN_VERSION),
        _plan(dataset, "segmentation", PLAN_VERSION, [task("segmentation", "Mask-Size")]),
    )
    for version in (PLAN_VERSION, TL_LATER_VERSION):
        plan = _plan(dataset, "biometry", version, [task(f"tl_{version}", "Tumor-Lesion-Size", _KITS_TL_EXTRA)])
        write_json_gz(folder / _plan_name("biometry", version), plan)


def _kits23_planted_case(
    case: _LabelledCase, dataset: str, det_cfg: str, tl_cfg: str, planted: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Add one test case's planted rows to `planted`; return its entries of the multi-cluster file."""
    image_rel = f"Images/{case.case_id}.nii.gz"
    multi_cluster_file = []
    for plant in case.plants:
        row = {"case_ID": case.case_id, "slice_dim": 2, "slice_idx": plant["slice_idx"], "label": plant["label"]}
        planted["dropped_rows"].append({"config": det_cfg, **row, "reason": _KITS_DROP_REASONS[plant["what"]]})
        if plant["what"] == "two_ellipses":
            planted["dropped_rows"].append(
                {"config": tl_cfg, **row, "reason": "2 fitted ellipses (len(biometric_profile) > 1)"}
            )
            planted["dropped_rows_latest"].append(
                {"config": tl_cfg, **row, "reason": "n_total_clusters == 2 in the v1.1.0 plan"}
            )
        if plant["what"] == "multi_cluster":
            planted["dropped_rows_latest"].append(
                {"config": tl_cfg, **row, "reason": "n_total_clusters == 2 in the v1.1.0 plan"}
            )
            planted["multi_cluster"].append(
                {
                    "config": tl_cfg,
                    "case_ID": case.case_id,
                    "image_file": image_rel,
                    "slice_dim": 2,
                    "slice_idx": plant["slice_idx"],
                    "task_ID": "01",
                    "n_total_clusters": 2,
                    "kept_at": PLAN_VERSION,
                }
            )
            multi_cluster_file.append(
                {"image_file": image_rel, "slice_dim": "z", "slice_idx": plant["slice_idx"], "task_ID": "01"}
            )
    for z, value in case.constant_slices.items():
        kept = [
            {"config": det_cfg, "label": label}
            for label, shapes in sorted(case.slices[z].items())
            if _detection_row_kept(shapes)
        ]
        if _TL_TARGET_LABEL in case.slices[z]:
            kept.append({"config": tl_cfg, "label": _TL_TARGET_LABEL})
        planted["constant_slices"].append(
            {
                "dataset": dataset,
                "case_ID": case.case_id,
                "image_file": image_rel,
                "slice_dim": 2,
                "slice_idx": z,
                "value": value,
                "kept_rows": kept,
            }
        )
    return multi_cluster_file


def _write_kits23(root: Path, rng: np.random.Generator) -> dict[str, Any]:
    """KiTS23: CT detection and T/L with every planted filter case; returns its part of the manifest."""
    dataset = "KiTS23"
    folder = root / "Datasets" / dataset
    test_cases = [_kits23_case(rng, "case_00000", planted=True), _kits23_case(rng, "case_00001", False)]
    train_cases = [_kits23_case(rng, "case_00002", planted=False)]
    records = _write_kits23_cases(folder, rng, {"test": test_cases, "train": train_cases})
    _write_kits23_plans(folder, dataset, records)

    # Expected counts and planted cases, from the drawn shapes.
    det_cfg = _config(dataset, "BoxSize", 2, "Test")
    tl_cfg = _config(dataset, "TumorLesionSize", 2, "Test")
    det_test_kept, det_test_all = _count_detection(test_cases)
    det_train_kept, det_train_all = _count_detection(train_cases)
    tl_test, tl_train = _count_tl(test_cases), _count_tl(train_cases)
    det = _split_counts(sum(det_test_kept.values()), sum(det_train_kept.values()))
    planted: dict[str, list[dict[str, Any]]] = {
        "dropped_rows": [],
        "dropped_rows_latest": [],
        "constant_slices": [],
        "multi_cluster": [],
        "version_ceiling": [
            {"dataset": dataset, "kind": "biometry", "versions": [PLAN_VERSION, TL_LATER_VERSION], "config": tl_cfg}
        ],
    }
    multi_cluster_file = []
    for case in test_cases:
        multi_cluster_file += _kits23_planted_case(case, dataset, det_cfg, tl_cfg, planted)
    text = json.dumps(multi_cluster_file, indent=2) + "\n"
    write_bytes(folder / MULTICLUSTER_FILE, text.encode("utf-8"))
    return {
        "configs": {det_cfg: det, tl_cfg: _split_counts(tl_test["v1.0.0"], tl_train["v1.0.0"])},
        "configs_unfiltered": {
            det_cfg: _split_counts(sum(det_test_all.values()), sum(det_train_all.values())),
            tl_cfg: _split_counts(tl_test["all"], tl_train["all"]),
        },
        "configs_latest": {det_cfg: det, tl_cfg: _split_counts(tl_test["latest"], tl_train["latest"])},
        "regions": {_KITS_REGIONS[label]: n for label, n in sorted(det_test_kept.items())},
        "planted": planted,
    }


# --------------------------------------------------------------------------------------------------
# OAIZIB-CM: knee MRI detection (sub-dataset folder)
# --------------------------------------------------------------------------------------------------

_OAIZIB_SHAPE = (60, 48, 36)
_OAIZIB_SPACING = (0.6, 0.5, 1.4)


def _oaizib_case(rng: np.random.Generator, case_id: str, planted: bool) -> _LabelledCase:
    """Femur on 18 slices, tibia on 16 (two slices hold both); planted cases add two drops."""
    first = 2 + int(rng.integers(0, 2))
    femur_rc = (20 + int(rng.integers(-1, 2)), 24 + int(rng.integers(-1, 2)))
    tibia_rc = (42 + int(rng.integers(-1, 2)), 24 + int(rng.integers(-1, 2)))
    slices: dict[int, dict[int, list[_Ellipse]]] = {}
    for z in range(first, first + 18):
        scale = _profile_scale(z, first, 18)
        semi = (max(6, round(9 * scale)), max(8, round(11 * scale)))
        slices.setdefault(z, {})[1] = [_Ellipse(femur_rc, semi)]
    for z in range(first + 16, first + 32):
        scale = _profile_scale(z, first + 16, 16)
        semi = (max(5, round(8 * scale)), max(7, round(10 * scale)))
        slices.setdefault(z, {})[2] = [_Ellipse(tibia_rc, semi)]
    case = _LabelledCase(case_id, slices)
    if planted:
        z = first + 16
        slices[z][1] = [_Ellipse((21, 14), (5, 5)), _Ellipse((21, 34), (5, 5))]
        case.plants.append({"slice_idx": z, "label": 1, "what": "two_components"})
        z = first + 31
        slices[z][2] = [_Ellipse(tibia_rc, (3, 7))]
        case.plants.append({"slice_idx": z, "label": 2, "what": "small_box"})
    return case


def _oaizib_image(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """float32, non-negative, integer-valued: background 0..10, soft tissue about 90, bone about 200."""
    vol = rng.integers(0, 11, size=mask.shape).astype(np.float32)
    leg2d = _Ellipse((30, 24), (28, 22)).raster(mask.shape[:2])
    leg = np.broadcast_to(leg2d[:, :, None], mask.shape)
    vol[leg] = rng.integers(80, 101, size=int(leg.sum()))
    for label, (low, high) in {1: (200, 221), 2: (180, 201)}.items():
        where = mask == label
        vol[where] = rng.integers(low, high, size=int(where.sum()))
    return vol


def _write_oaizib(root: Path, rng: np.random.Generator) -> dict[str, Any]:
    dataset = "OAIZIB-CM"
    folder = root / "Datasets" / dataset
    test_cases = [_oaizib_case(rng, "oaizib_001", planted=True), _oaizib_case(rng, "oaizib_002", False)]
    train_cases = [_oaizib_case(rng, "oaizib_003", planted=False)]
    records: dict[str, list[dict[str, Any]]] = {"test": [], "train": []}
    for split, cases in (("test", test_cases), ("train", train_cases)):
        for case in cases:
            mask = _paint_mask(_OAIZIB_SHAPE, case)
            image_rel = f"OAIZIB-CM/Images/{case.case_id}_0000.nii.gz"
            mask_rel = f"OAIZIB-CM/Masks/{case.case_id}.nii.gz"
            info = write_nifti(folder / image_rel, _oaizib_image(rng, mask), _OAIZIB_SPACING)
            write_nifti(folder / mask_rel, mask, _OAIZIB_SPACING)
            records[split].append(
                {
                    "case_ID": case.case_id,
                    "image_file": image_rel,
                    "mask_file": mask_rel,
                    "image_file_info": info,
                    "slice_profiles_x": [],
                    "slice_profiles_y": [],
                    "slice_profiles_z": _detection_profiles(mask, info["voxel_size"]),
                }
            )
    task = {
        "task_ID": "01",
        "task_type": "Box-Size",
        "image_modality": "MRI",
        "image_description": "knee MRI scan",
        "labels_map": dict(_OAIZIB_LABELS),
        "train_cases": records["train"],
        "test_cases": records["test"],
    }
    write_json_gz(folder / _plan_name("detection", PLAN_VERSION), _plan(dataset, "detection", PLAN_VERSION, [task]))

    cfg = _config(dataset, "BoxSize", 2, "Test")
    test_kept, test_all = _count_detection(test_cases)
    train_kept, train_all = _count_detection(train_cases)
    counts = _split_counts(sum(test_kept.values()), sum(train_kept.values()))
    reasons = {
        "two_components": "femur has 2 components (condyles) on the slice (2 boxes)",
        "small_box": "single box smaller than 10 px in one dimension",
    }
    dropped = [
        {
            "config": cfg,
            "case_ID": case.case_id,
            "slice_dim": 2,
            "slice_idx": plant["slice_idx"],
            "label": plant["label"],
            "reason": reasons[plant["what"]],
        }
        for case in test_cases
        for plant in case.plants
    ]
    return {
        "configs": {cfg: counts},
        "configs_unfiltered": {cfg: _split_counts(sum(test_all.values()), sum(train_all.values()))},
        "configs_latest": {cfg: counts},
        "regions": {_OAIZIB_REGION: sum(test_kept.values())},
        "planted": {"dropped_rows": dropped},
    }


# --------------------------------------------------------------------------------------------------
# A/D datasets: shared plan building
# --------------------------------------------------------------------------------------------------


def _line(name: str, first: str, second: str) -> dict[str, Any]:
    return {"name": name, "element_map_name": "landmarks_map", "element_keys": [first, second]}


def _angle(name: str, first: str, second: str) -> dict[str, Any]:
    return {"name": name, "element_map_name": "lines_map", "element_keys": [first, second]}


def _ad_case(
    task: dict[str, Any],
    case_id: str,
    image_rel: str,
    landmark_rel: str,
    info: dict[str, Any],
    landmarks: dict[str, list[int]],
) -> dict[str, Any]:
    """A/D case: one slice entry per ``biometrics_map`` metric, in that order, under its plane."""
    voxel_size = info["voxel_size"]
    profiles: list[list[dict[str, Any]]] = [[], [], []]
    for spec in task["biometrics_map"]:
        dim = spec["slice_dim"]
        if spec["metric_type"] == "distance":
            keys = task["lines_map"][spec["metric_key"]]["element_keys"]
            points = [landmarks[k] for k in keys]
            value, unit = _distance_mm(points[0], points[1], voxel_size), "mm"
        else:
            lines = [
                task["lines_map"][k]["element_keys"] for k in task["angles_map"][spec["metric_key"]]["element_keys"]
            ]
            segments = [(landmarks[a], landmarks[b]) for a, b in lines]
            points = [p for segment in segments for p in segment]
            value, unit = _angle_deg(segments[0], segments[1], voxel_size), "degree"
        slice_indices = {p[dim] for p in points}
        if len(slice_indices) != 1:
            raise RuntimeError(f"phantom {case_id} {spec['metric_key']}: landmarks are not on one slice")
        metric = {
            **{k: spec[k] for k in ("metric_type", "metric_map_name", "metric_key")},
            "metric_value": round(value, 6),
            "metric_unit": unit,
            "slice_dim": dim,
        }
        profiles[dim].append({"slice_idx": slice_indices.pop(), "slice_profile": [metric]})
    return {
        "case_ID": case_id,
        "image_file": image_rel,
        "landmark_file": landmark_rel,
        "image_file_info": info,
        **dict(zip(_PROFILE_KEYS, profiles)),
    }


def _metric(metric_type: str, key: str, slice_dim: int) -> dict[str, Any]:
    map_name = "lines_map" if metric_type == "distance" else "angles_map"
    return {
        "metric_type": metric_type,
        "metric_map_name": map_name,
        "metric_key": key,
        "slice_dim": slice_dim,
    }


# --------------------------------------------------------------------------------------------------
# Ceph-Biometrics-400: 2-D cephalograms, distances and angles
# --------------------------------------------------------------------------------------------------

_CEPH_SHAPE = (1, 193, 240)
_CEPH_SPACING = (0.1, 0.1, 0.1)
_CEPH_LANDMARKS = {  # name, base (row, col) on the 193 x 240 film
    "P1": ("sella", (60, 70)),
    "P2": ("nasion", (55, 185)),
    "P3": ("orbitale", (80, 165)),
    "P4": ("porion", (85, 45)),
    "P5": ("subspinale", (115, 190)),
    "P6": ("supramentale", (160, 180)),
    "P7": ("pogonion", (172, 182)),
    "P8": ("menton", (183, 170)),
    "P9": ("gnathion", (180, 178)),
    "P10": ("gonion", (150, 80)),
    "P11": ("lower incisal incision", (135, 195)),
    "P12": ("upper incisal incision", (133, 197)),
    "P13": ("upper lip", (128, 210)),
    "P14": ("lower lip", (145, 208)),
    "P15": ("subnasale", (110, 205)),
    "P16": ("soft tissue pogonion", (175, 200)),
    "P17": ("posterior nasal spine", (110, 100)),
    "P18": ("anterior nasal spine", (105, 195)),
    "P19": ("articulare", (110, 60)),
}
# Test case 0: Frankfort (P3-P4) and palatal (P17-P18) planes made nearly parallel, angle about 0.0014 deg.
_CEPH_NEAR_PARALLEL = {"P3": (86, 220), "P4": (85, 20), "P17": (110, 12), "P18": (111, 213)}


def _ceph_task() -> dict[str, Any]:
    return {
        "task_ID": "01",
        "task_type": "Biometrics-From-Landmarks",
        "image_modality": "X Ray",
        "image_description": "cephalogram (head and neck X-ray)",
        "labels_map": {},
        "landmarks_map": {key: name for key, (name, _) in _CEPH_LANDMARKS.items()},
        "lines_map": {
            "L-1-2": _line("anterior cranial base", "P1", "P2"),
            "L-2-8": _line("anterior face height", "P2", "P8"),
            "L-1-10": _line("posterior face height", "P1", "P10"),
            "L-5-6": _line("", "P5", "P6"),
            "L-13-14": _line("", "P13", "P14"),
            "L-2-5": _line("", "P2", "P5"),
            "L-2-6": _line("", "P2", "P6"),
            "L-3-4": _line("Frankfort horizontal plane", "P3", "P4"),
            "L-8-10": _line("mandibular plane", "P8", "P10"),
            "L-17-18": _line("palatal plane", "P17", "P18"),
        },
        "angles_map": {
            "A-1": _angle("SNA angle", "L-1-2", "L-2-5"),
            "A-2": _angle("SNB angle", "L-1-2", "L-2-6"),
            "A-3": _angle("", "L-3-4", "L-8-10"),
            "A-4": _angle("palatal plane to Frankfort horizontal", "L-3-4", "L-17-18"),
        },
        "biometrics_map": [
            _metric("distance", "L-1-2", 0),
            _metric("angle", "A-1", 0),
            _metric("distance", "L-2-8", 0),
            _metric("distance", "L-5-6", 0),
            _metric("angle", "A-2", 0),
            _metric("distance", "L-1-10", 0),
            _metric("angle", "A-3", 0),
            _metric("distance", "L-13-14", 0),
            _metric("angle", "A-4", 0),
        ],
    }


def _ceph_landmarks(rng: np.random.Generator, near_parallel: bool) -> dict[str, list[int]]:
    out = {}
    for key, (_, (row, col)) in _CEPH_LANDMARKS.items():
        out[key] = [0, row + int(rng.integers(-3, 4)), col + int(rng.integers(-3, 4))]
    if near_parallel:
        for key, (row, col) in _CEPH_NEAR_PARALLEL.items():
            out[key] = [0, row, col]
    return out


def _ceph_image(rng: np.random.Generator, landmarks: dict[str, list[int]]) -> np.ndarray:
    """uint8 film: dark gradient background, a brighter head, small bright marks at the landmarks."""
    height, width = _CEPH_SHAPE[1:]
    film = (20 + np.arange(width)[None, :] // 24 + rng.integers(0, 8, size=(height, width))).astype(np.uint8)
    head = _Ellipse((96, 130), (90, 105)).raster((height, width))
    film[head] = rng.integers(100, 121, size=int(head.sum()), dtype=np.uint8)
    for _, row, col in landmarks.values():
        film[max(0, row - 1) : row + 2, max(0, col - 1) : col + 2] = 250
    return film[None, :, :]


def _write_ceph(root: Path, rng: np.random.Generator) -> dict[str, Any]:
    dataset = "Ceph-Biometrics-400"
    folder = root / "Datasets" / dataset
    task = _ceph_task()
    splits = {"test": ["001", "002"], "train": ["003"]}
    cases: dict[str, list[dict[str, Any]]] = {"test": [], "train": []}
    for split, case_ids in splits.items():
        for case_id in case_ids:
            landmarks = _ceph_landmarks(rng, near_parallel=case_id == splits["test"][0])
            image_rel, landmark_rel = f"Images/{case_id}.nii.gz", f"Landmarks/{case_id}.json.gz"
            info = write_nifti(folder / image_rel, _ceph_image(rng, landmarks), _CEPH_SPACING)
            write_json_gz(folder / landmark_rel, landmarks)
            cases[split].append(_ad_case(task, case_id, image_rel, landmark_rel, info, landmarks))
    task["train_cases"], task["test_cases"] = cases["train"], cases["test"]
    write_json_gz(folder / _plan_name("biometry", PLAN_VERSION), _plan(dataset, "biometry", PLAN_VERSION, [task]))

    configs = {}
    per_case = {t: sum(m["metric_type"] == t for m in task["biometrics_map"]) for t in ("distance", "angle")}
    for metric_type, token in (("distance", "Distance"), ("angle", "Angle")):
        cfg = _config(dataset, "BiometricsFromLandmarks", 0, "Test", token)
        configs[cfg] = _split_counts(
            per_case[metric_type] * len(splits["test"]), per_case[metric_type] * len(splits["train"])
        )
    angle_cfg = _config(dataset, "BiometricsFromLandmarks", 0, "Test", "Angle")
    near_zero = [
        {
            "config": angle_cfg,
            "case_ID": case["case_ID"],
            "slice_dim": 0,
            "slice_idx": entry["slice_idx"],
            "metric_key": metric["metric_key"],
            "metric_value": metric["metric_value"],
        }
        for case in cases["test"]
        for entry in case["slice_profiles_x"]
        for metric in entry["slice_profile"]
        if metric["metric_type"] == "angle" and metric["metric_value"] < 0.1
    ]
    return {
        "configs": configs,
        "configs_unfiltered": dict(configs),
        "configs_latest": dict(configs),
        "regions": {},
        "planted": {"near_zero_angles": near_zero},
    }


# --------------------------------------------------------------------------------------------------
# FeTA24: 3-D fetal brain MRI, one distance config per plane
# --------------------------------------------------------------------------------------------------

_FETA_SHAPE = (56, 64, 48)
_FETA_SPACING = (0.8, 0.9, 1.0)
_FETA_CENTER = (28, 32, 24)


def _feta_task() -> dict[str, Any]:
    return {
        "task_ID": "01",
        "task_type": "Biometrics-From-Landmarks",
        "image_modality": "",
        "image_description": "",
        "labels_map": {},
        "landmarks_map": {
            "P1": "corpus callosum anterior",
            "P2": "corpus callosum posterior",
            "P3": "vermis superior",
            "P4": "vermis inferior",
            "P5": "cerebellum left",
            "P6": "cerebellum right",
            "P7": "brain left",
            "P8": "brain right",
            "P9": "skull left",
            "P10": "skull right",
        },
        "lines_map": {
            "L-1-2": _line("corpus callosum length", "P1", "P2"),
            "L-3-4": _line("", "P3", "P4"),
            "L-5-6": _line("transverse cerebellar diameter", "P5", "P6"),
            "L-7-8": _line("brain biparietal diameter", "P7", "P8"),
            "L-9-10": _line("", "P9", "P10"),
        },
        "angles_map": {},
        "biometrics_map": [
            _metric("distance", "L-1-2", 0),
            _metric("distance", "L-3-4", 0),
            _metric("distance", "L-7-8", 2),
            _metric("distance", "L-9-10", 2),
            _metric("distance", "L-5-6", 1),
        ],
    }


def _feta_landmarks(rng: np.random.Generator) -> dict[str, list[int]]:
    """Integer voxel landmarks; each pair shares the index of its measurement plane."""
    ci, cj, ck = (c + int(d) for c, d in zip(_FETA_CENTER, rng.integers(-2, 3, size=3)))

    def jitter() -> int:
        return int(rng.integers(-1, 2))

    sagittal, coronal, axial = ci, cj - 13, ck + 2
    return {
        "P1": [sagittal, cj + 13 + jitter(), ck + 4 + jitter()],
        "P2": [sagittal, cj - 9 + jitter(), ck + 3 + jitter()],
        "P3": [sagittal, cj - 12 + jitter(), ck - 6 + jitter()],
        "P4": [sagittal, cj - 14 + jitter(), ck - 14 + jitter()],
        "P5": [ci - 9 + jitter(), coronal, ck - 11 + jitter()],
        "P6": [ci + 9 + jitter(), coronal, ck - 11 + jitter()],
        "P7": [ci - 18 + jitter(), cj + 1 + jitter(), axial],
        "P8": [ci + 18 + jitter(), cj + jitter(), axial],
        "P9": [ci - 22 + jitter(), cj + jitter(), axial],
        "P10": [ci + 22 + jitter(), cj + jitter(), axial],
    }


def _feta_image(rng: np.random.Generator) -> np.ndarray:
    """float32, integer-valued: skull shell about 150, brain about 300, background 0..4."""
    grid = np.ogrid[tuple(slice(0, n) for n in _FETA_SHAPE)]

    def inside(semi: tuple[int, int, int]) -> np.ndarray:
        return sum(((g - c) / s) ** 2 for g, c, s in zip(grid, _FETA_CENTER, semi)) <= 1.0

    vol = rng.integers(0, 5, size=_FETA_SHAPE).astype(np.float32)
    skull, brain = inside((25, 30, 22)), inside((22, 27, 20))
    vol[skull] = rng.integers(140, 161, size=int(skull.sum()))
    vol[brain] = rng.integers(290, 311, size=int(brain.sum()))
    return vol


def _write_feta24(root: Path, rng: np.random.Generator) -> dict[str, Any]:
    dataset = "FeTA24"
    folder = root / "Datasets" / dataset
    task = _feta_task()
    splits = {"test": ["sub-001", "sub-002"], "train": ["sub-003"]}
    cases: dict[str, list[dict[str, Any]]] = {"test": [], "train": []}
    for split, case_ids in splits.items():
        for case_id in case_ids:
            landmarks = _feta_landmarks(rng)
            image_rel = f"Images-reoriented/{case_id}_rec-phantom_T2w.nii.gz"
            landmark_rel = f"Landmarks/{case_id}.json.gz"
            info = write_nifti(folder / image_rel, _feta_image(rng), _FETA_SPACING)
            write_json_gz(folder / landmark_rel, landmarks)
            cases[split].append(_ad_case(task, case_id, image_rel, landmark_rel, info, landmarks))
    task["train_cases"], task["test_cases"] = cases["train"], cases["test"]
    write_json_gz(folder / _plan_name("biometry", PLAN_VERSION), _plan(dataset, "biometry", PLAN_VERSION, [task]))

    configs = {}
    for plane in range(3):
        per_case = sum(m["slice_dim"] == plane for m in task["biometrics_map"])
        cfg = _config(dataset, "BiometricsFromLandmarks", plane, "Test")
        configs[cfg] = _split_counts(per_case * len(splits["test"]), per_case * len(splits["train"]))
    return {
        "configs": configs,
        "configs_unfiltered": dict(configs),
        "configs_latest": dict(configs),
        "regions": {},
        "planted": {},
    }
