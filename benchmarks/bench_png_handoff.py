"""openai backend image hand-off: lossless PNG + base64 of one 512x512 CT-like slice, ours beside Pillow's.

The slice is what doc_to_visual gives a model: a grey CT-like image (body disc, an organ, Gaussian noise) as
RGB. Timed, per slice, median of --repeats runs after one warm-up:

* ours: `png_data_url` of the backend (grey PNG when R == G == B, `fastpng.encode_png`: filter None, zlib
  level 1, run-length strategy) plus base64;
* Pillow default: `Image.save(format="PNG")` of the RGB slice (level 6, adaptive filters) plus base64;
* Pillow, our settings: the grey slice through Pillow at level 1 with the run-length strategy (the fastest
  Pillow option; its per-row filter search remains).

Every encoding is decoded once and compared with the slice (lossless check). Not collected by pytest.
Usage: .venv/bin/python benchmarks/bench_png_handoff.py [--size 512] [--repeats 31]
"""

from __future__ import annotations

import argparse
import base64
import io
import platform
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "adapters"))

from medvision_adapters.backends._common import png_data_url  # noqa: E402
from test_openai_handoff import ct_like_slice  # noqa: E402

TARGET_MS = 8.0


def pillow_url(image: Image.Image, **options: object) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def median_ms(fn: Callable[[], str], repeats: int) -> tuple[float, str]:
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0, out


def lossless(url: str, image: Image.Image) -> bool:
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    return np.array_equal(np.asarray(decoded), np.asarray(image))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args()
    image = ct_like_slice(args.size)
    grey = image.convert("L")
    cases = {
        "ours (png_data_url)": lambda: png_data_url(image),
        "Pillow default PNG (RGB)": lambda: pillow_url(image),
        "Pillow grey, level 1, Z_RLE": lambda: pillow_url(grey, compress_level=1, compress_type=zlib.Z_RLE),
    }
    print(f"{args.size}x{args.size} CT-like slice with noise; median of {args.repeats}; {platform.processor() or ''}")
    results = {}
    for name, fn in cases.items():
        ms, url = median_ms(fn, args.repeats)
        results[name] = ms
        ok = "lossless" if lossless(url, image) else "NOT LOSSLESS"
        print(f"  {name:<30} {ms:7.2f} ms/slice  {len(url) / 1024:7.1f} KiB data URL  {ok}")
    ours = results["ours (png_data_url)"]
    print(
        f"  speed-up over Pillow's default: {results['Pillow default PNG (RGB)'] / ours:.1f}x; "
        f"target <= {TARGET_MS} ms: {'met' if ours <= TARGET_MS else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
