"""A minimal, fast, lossless PNG writer for 8-bit grey and RGB arrays (the images sent as data URLs).

Why not Pillow: Pillow always runs its adaptive per-row filter search, which costs most of the encode time
(about 10 ms for a 512x512 grey CT slice even with zlib level 1 and the run-length strategy, 75 ms for the
default PNG of the RGB slice; OpenCV's libpng encoder is about 7 ms and not a dependency). This writer uses
filter type 0 (None) on every row and deflates with zlib level 1 and the `Z_RLE` strategy: about 2 ms for the
same slice, and the file is smaller than Pillow's level-1 file (noise defeats the filters; runs of background
are what compresses). `benchmarks/bench_png_handoff.py` measures it. Any PNG decoder reads the result.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {1: 0, 3: 2}  # channels -> PNG colour type (0 grey, 2 RGB)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(pixels: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of an (H, W) grey or (H, W, 3) RGB uint8 array; `level` is the zlib level (0 = stored).

    Raises:
        ValueError: another dtype or shape.
    """
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"encode_png: expected (H, W) or (H, W, 3) uint8, got {pixels.shape} {pixels.dtype}")
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else 3
    rows = np.zeros((height, width * channels + 1), np.uint8)  # column 0: filter type 0 (None)
    rows[:, 1:] = pixels.reshape(height, width * channels)
    deflate = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_RLE)
    data = deflate.compress(rows.data) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPE[channels], 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
