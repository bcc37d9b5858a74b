"""Cheap integrity checks of the files rows reference (doctor's default mode and `process_docs`).

A `.nii.gz` volume is checked without decoding its voxels: gzip magic, the NIfTI-1/2 header (the first bytes of
the stream), and the gzip trailer's uncompressed size (ISIZE, the last 4 bytes) against the size the header
implies (`vox_offset + prod(dim) * bitpix / 8`). A truncated file loses its trailer, so the sizes disagree.
A mismatch is confirmed by a full decode before it is reported (a multi-member gzip has a different trailer).
Small gzip files (landmark `.json.gz`) are decoded in full. Cost: about 1 ms per volume.
"""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
FULL_DECODE_BELOW = 1 << 20  # gzip files smaller than this (landmarks) are decoded in full
FIX = "re-download the dataset with the official MedVision downloader, or restore the file"
_HEADER_BYTES = 540  # NIfTI-2 header size; NIfTI-1 uses the first 348


def _nifti_expected_size(header: bytes) -> tuple[int, str] | str:
    """(bytes of header + voxels, version) from a NIfTI-1/2 header, or why it is not a NIfTI header."""
    if len(header) >= 348 and header[344:348] in (b"n+1\0", b"ni1\0"):
        for order in ("<", ">"):
            if struct.unpack(order + "i", header[0:4])[0] == 348:
                dims = struct.unpack(order + "8h", header[40:56])
                bitpix = struct.unpack(order + "h", header[72:74])[0]
                vox_offset = struct.unpack(order + "f", header[108:112])[0]
                break
        else:
            return "NIfTI-1 magic but sizeof_hdr is not 348"
    elif len(header) >= 540 and header[4:8] in (b"n+2\0", b"ni2\0"):
        order = "<" if struct.unpack("<i", header[0:4])[0] == 540 else ">"
        dims = struct.unpack(order + "8q", header[16:80])
        bitpix = struct.unpack(order + "h", header[14:16])[0]
        vox_offset = struct.unpack(order + "q", header[168:176])[0]
    else:
        return "not a NIfTI file (no NIfTI-1/2 magic in the header)"
    ndim = int(dims[0])
    if not 1 <= ndim <= 7 or bitpix <= 0 or bitpix % 8 or any(d < 0 for d in dims[1 : ndim + 1]):
        return f"implausible NIfTI header (ndim {ndim}, bitpix {bitpix})"
    n_voxels = int(np.prod([int(d) for d in dims[1 : ndim + 1]], dtype=np.int64))
    return int(vox_offset) + n_voxels * bitpix // 8, "nifti"


def _full_decode_problem(path: Path) -> str | None:
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 22):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        return f"corrupt or truncated gzip ({' '.join(str(exc).split())})"
    return None


def _nifti_gz_problem(path: Path, size: int) -> str | None:
    try:
        with gzip.open(path, "rb") as fh:
            header = fh.read(_HEADER_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        return f"truncated or corrupt: the gzip stream breaks in the header ({' '.join(str(exc).split())})"
    expected = _nifti_expected_size(header)
    if isinstance(expected, str):
        return expected
    with open(path, "rb") as fh:
        fh.seek(size - 4)
        isize = struct.unpack("<I", fh.read(4))[0]
    if isize != expected[0] % (1 << 32):
        # a truncated file has no trailer; a (rare) multi-member gzip decodes fine, so confirm
        why = _full_decode_problem(path)
        if why is not None:
            return f"truncated or corrupt: {why}; the header implies {expected[0]} bytes"
    return None


def file_problem(path: str | Path) -> str | None:
    """Why a referenced file is unusable (missing, empty, not gzip, truncated, not NIfTI), or None."""
    p = Path(path)
    if not p.is_file():
        return "missing"
    size = p.stat().st_size
    if size == 0:
        return "empty"
    name = p.name
    if name.endswith(".gz"):
        with open(p, "rb") as fh:
            if fh.read(2) != GZIP_MAGIC:
                return "not a gzip file"
        if size < 18:
            return "truncated (shorter than a gzip header and trailer)"
        if name.endswith((".nii.gz", ".img.gz")):
            return _nifti_gz_problem(p, size)
        if size < FULL_DECODE_BELOW:
            try:
                data = gzip.decompress(p.read_bytes())
            except (OSError, EOFError, zlib.error) as exc:
                return f"corrupt or truncated gzip ({' '.join(str(exc).split())})"
            if name.endswith(".json.gz"):
                try:
                    json.loads(data)
                except ValueError as exc:
                    return f"invalid JSON inside the gzip ({exc})"
            return None
        return _full_decode_problem(p)
    if name.endswith(".nii"):
        with open(p, "rb") as fh:
            header = fh.read(_HEADER_BYTES)
        expected = _nifti_expected_size(header)
        if isinstance(expected, str):
            return expected
        if size < expected[0]:
            return f"truncated: {size} bytes, the header implies {expected[0]}"
    return None


def check_referenced_files(rows: list[dict[str, Any]], config: str, task: str) -> None:
    """Raise PlanError naming the first file the rows read (image, landmarks) that fails `file_problem`."""
    from .errors import PlanError

    seen: set[str] = set()
    bad: list[tuple[str, str]] = []
    for row in rows:
        for key in ("image_file", "landmark_file"):
            path = row.get(key)
            if path and path not in seen:
                seen.add(path)
                why = file_problem(path)
                if why is not None:
                    bad.append((path, why))
    if bad:
        path, why = bad[0]
        more = (
            f" (and {len(bad) - 1} more file(s); `medvision-eval doctor --tasks {task}` lists them)"
            if len(bad) > 1
            else ""
        )
        raise PlanError(f"{path}: {why}; {FIX}{more} [config {config}].")
