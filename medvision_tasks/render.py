"""Slice loading and rendering as the v1 pipeline did (docs/reference.md §1.7-§1.8).

A volume is decoded once and kept in a byte-bounded LRU cache in its stored dtype; slices are converted
to float32 on demand (bit-identical to `get_fdata().astype(float32)`). No reorientation: the first
remaining axis of a slice is the image rows (H), the second the columns (W).
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import VolumeError
from .notices import warn

# width / level of the later-upstream CT windows (docs/reference.md §1.7)
HU_WINDOWS = {"soft_tissue": (400.0, 40.0), "lung": (1500.0, -600.0), "brain": (80.0, 40.0), "bone": (1800.0, 400.0)}
WINDOW_BY_PARENT = {
    "Brain": "brain",
    "Brain Tumor/Lesion": "brain",
    "Lung": "lung",
    "Lung Tumor/Lesion": "lung",
    "Hip": "bone",
    "Rib": "bone",
    "Spine": "bone",
    "Jawbone": "bone",
    "Tooth": "bone",
}
NO_WINDOW_PARENTS = ("Knee", "Others")
PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class VolumeInfo:
    """Shape and header spacing (mm, float64 from the float32 header zooms) of a volume."""

    shape: tuple[int, ...]
    zooms: tuple[float, float, float]


class VolumeCache:
    """LRU cache of decoded volumes bounded by bytes (and optionally by count); counts loads and hits."""

    def __init__(self, max_bytes: int, max_items: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._items: OrderedDict[str, tuple[VolumeInfo, np.ndarray, bool]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.loads = 0
        self.hits = 0

    def get(self, path: str, allow_non_ras: bool = False) -> tuple[VolumeInfo, np.ndarray, bool]:
        """(info, array, needs_float_conversion) of a volume, decoding it on a miss."""
        with self._lock:
            if path in self._items:
                self._items.move_to_end(path)
                self.hits += 1
                return self._items[path]
        item = _load_volume(path, allow_non_ras)
        with self._lock:
            self.loads += 1
            if path not in self._items:
                self._items[path] = item
                self._bytes += item[1].nbytes
            while len(self._items) > 1 and (
                self._bytes > self.max_bytes or (self.max_items is not None and len(self._items) > self.max_items)
            ):
                _, old = self._items.popitem(last=False)
                self._bytes -= old[1].nbytes
        return item

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
            self.loads = self.hits = 0


_CACHE: VolumeCache | None = None


def volume_cache() -> VolumeCache:
    """The process-wide volume cache shared by doc_to_visual and doc_to_text."""
    global _CACHE
    if _CACHE is None:
        from .settings import volume_cache_bytes, volume_cache_items

        _CACHE = VolumeCache(volume_cache_bytes(), volume_cache_items())
    return _CACHE


def _open_nifti(path: str) -> tuple[Any, bytes | None]:
    """(image, decompressed bytes) of a gzip NIfTI-1 read in one pass, else (nib.load(path), None).

    One `gzip.decompress` of the whole file is about a quarter faster than nibabel's streamed read.
    """
    import nibabel as nib

    if path.endswith(".gz"):
        raw = gzip.decompress(Path(path).read_bytes())
        if raw[344:348] == b"n+1\0":  # single-file NIfTI-1
            return nib.Nifti1Image.from_bytes(raw), raw
    return nib.load(path), None


def _raw_array(img: Any, raw: bytes) -> np.ndarray:
    """Zero-copy, read-only view of the voxel data in `raw` (stored dtype, Fortran order, as nibabel returns)."""
    proxy = img.dataobj
    shape, dtype, offset = tuple(int(n) for n in proxy.shape), np.dtype(proxy.dtype), int(proxy.offset)
    needed = offset + int(np.prod(shape)) * dtype.itemsize
    if len(raw) < needed:
        raise ValueError(f"expected {needed} bytes of header and data, got {len(raw)}")
    return np.ndarray(shape, dtype=dtype, buffer=raw, offset=offset, order="F")


def _load_volume(path: str, allow_non_ras: bool) -> tuple[VolumeInfo, np.ndarray, bool]:
    import nibabel as nib

    p = Path(path)
    if not p.is_file():
        raise VolumeError(f"{path}: file not found; check MEDVISION_DATA_DIR or re-download the dataset.")
    if p.stat().st_size == 0:
        raise VolumeError(f"{path}: file is empty; re-download it.")
    try:
        img, raw = _open_nifti(path)
        codes = nib.aff2axcodes(img.affine)
        if codes != ("R", "A", "S"):
            msg = (
                f"{path}: orientation {''.join(codes)} is not RAS+; MedVision annotations live in the RAS+ array "
                "frame written by the official downloader (set MEDVISION_ALLOW_NON_RAS=1 to continue anyway)."
            )
            if not allow_non_ras:
                raise VolumeError(msg)

            warn(msg, stacklevel=3)
        slope, inter = img.dataobj.slope, img.dataobj.inter
        identity = (slope is None or np.isnan(slope) or slope == 1) and (inter is None or np.isnan(inter) or inter == 0)
        if identity and np.issubdtype(img.get_data_dtype(), np.number):
            array = _raw_array(img, raw) if raw is not None else np.asanyarray(img.dataobj)
            convert = True
        else:
            array = img.get_fdata().astype(np.float32)
            convert = False
        zooms = tuple(float(np.float64(z)) for z in img.header.get_zooms()[:3])
    except VolumeError:
        raise
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise VolumeError(
            f"{path}: cannot read NIfTI ({' '.join(str(exc).split())}); the file is corrupt or truncated, "
            "re-download it."
        ) from exc
    if array.ndim != 3:
        raise VolumeError(f"{path}: expected a 3-D volume, found shape {array.shape}.")
    return VolumeInfo(tuple(int(s) for s in array.shape), zooms), array, convert  # type: ignore[arg-type]


def volume_info(path: str, allow_non_ras: bool = False) -> VolumeInfo:
    """Shape and header spacing of a volume (through the shared cache)."""
    return volume_cache().get(path, allow_non_ras)[0]


def load_slice(path: str, slice_dim: int, slice_idx: int, allow_non_ras: bool = False) -> np.ndarray:
    """One 2-D slice as float32, equal to `nib.load(path).get_fdata().astype(float32)[...]`."""
    info, array, convert = volume_cache().get(path, allow_non_ras)
    if slice_dim not in (0, 1, 2):
        raise VolumeError(f"{path}: slice_dim {slice_dim} is not 0, 1 or 2.")
    if not 0 <= slice_idx < info.shape[slice_dim]:
        raise VolumeError(f"{path}: slice_idx {slice_idx} out of range for axis {slice_dim} of shape {info.shape}.")
    index: list[object] = [slice(None)] * 3
    index[slice_dim] = slice_idx
    plane = array[tuple(index)]
    return plane.astype(np.float32) if convert else np.array(plane, dtype=np.float32)


def in_plane_spacing(zooms: tuple[float, float, float], slice_dim: int) -> tuple[float, float]:
    """(px_h, px_w) in mm: the header zooms with the sliced axis removed."""
    rest = [z for i, z in enumerate(zooms) if i != slice_dim]
    return float(rest[0]), float(rest[1])


def reshape_slice(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear zoom to size x size on float32 (aspect ratio not preserved), as the v1 resolution variants."""
    from scipy.ndimage import zoom

    h, w = img.shape
    return zoom(img, (size / h, size / w), order=1)


def minmax_uint8(img: np.ndarray) -> np.ndarray:
    """v1 per-slice min-max to uint8 (truncating); a constant slice becomes all zeros."""
    lo, hi = img.min(), img.max()
    if hi > lo:
        return ((img - lo) / (hi - lo) * 255).astype(np.uint8)
    return np.zeros(img.shape, dtype=np.uint8)


def window_uint8(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip to [lo, hi] and scale to 0-255 (truncating); lo == hi gives all zeros."""
    if hi <= lo:
        return np.zeros(img.shape, dtype=np.uint8)
    clipped = np.clip(img, lo, hi)
    return ((clipped - lo) / (hi - lo) * 255).astype(np.uint8)


def _regroup_map() -> dict[str, str]:
    """Label -> parent class (the v1 `label_map_regroup`, read through `medvision_metrics.labels`)."""
    from medvision_metrics.labels import load_label_maps

    return load_label_maps()["label_map_regroup"]


def hu_window_for(modality: str, label_name: str | None, dataset: str, task_id: str) -> tuple[float, float] | None:
    """(lo, hi) HU bounds for a CT row whose parent class has a window, else None (percentile rule)."""
    if modality.strip().lower() != "ct" or not label_name:
        return None
    if dataset == "KiPA22" and task_id == "01":
        return None
    parent = _regroup_map().get(label_name)
    if parent is None or parent in NO_WINDOW_PARENTS:
        return None
    width, level = HU_WINDOWS[WINDOW_BY_PARENT.get(parent, "soft_tissue")]
    return level - width / 2, level + width / 2


def intensity_uint8(img: np.ndarray, intensity: str, window: tuple[float, float] | None) -> np.ndarray:
    """Map a float32 slice to uint8 with `minmax` (v1) or `hu_window` (HU window, else percentile)."""
    if intensity == "minmax":
        return minmax_uint8(img)
    if window is not None:
        return window_uint8(img, *window)
    lo, hi = np.percentile(img, PERCENTILES)
    return window_uint8(img, float(lo), float(hi))


def to_rgb_image(gray: np.ndarray) -> Image.Image:
    """Grey uint8 -> RGB PIL image (no overlay, no scale bar)."""
    return Image.fromarray(gray, "L").convert("RGB")


def volume_orientation(path: str) -> str:
    """Axis codes of a volume's affine (e.g. 'RAS'), read from the header only."""
    import nibabel as nib

    try:
        return "".join(nib.aff2axcodes(nib.load(path).affine))
    except (OSError, EOFError, zlib.error, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise VolumeError(f"{path}: cannot read the NIfTI header ({exc}); the file is corrupt, re-download.") from exc


def check_volume(path: str, allow_non_ras: bool = False) -> VolumeInfo:
    """Decode a whole volume outside the cache (orientation, gzip and data integrity); raises VolumeError."""
    return _load_volume(path, allow_non_ras)[0]
