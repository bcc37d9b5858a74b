"""openai backend: the documented default timeout (overridable) and the lossless fast PNG hand-off."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from medvision_adapters.backends._common import png_bytes, png_data_url
from medvision_adapters.backends.fastpng import encode_png
from medvision_adapters.backends.openai import CONNECT_TIMEOUT_S, DEFAULT_TIMEOUT_S, OpenAIBackend
from PIL import Image


def ct_like_slice(size: int = 512, seed: int = 0) -> Image.Image:
    """A grey CT-like slice with noise, rendered as RGB like doc_to_visual (the benchmark uses the same)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    r = np.hypot(y - size / 2, x - size / 2)
    body = r < 0.42 * size
    img = 90.0 * body + 60.0 * (np.hypot(y - 0.45 * size, x - 0.4 * size) < 0.1 * size)
    img += rng.normal(0, 12, (size, size)) * body
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L").convert("RGB")


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_ct_slice_round_trips_losslessly_through_the_data_url():
    image = ct_like_slice()
    url = png_data_url(image)
    assert url.startswith("data:image/png;base64,")
    decoded = _decode(base64.b64decode(url.split(",", 1)[1]))
    assert np.array_equal(decoded, np.asarray(image))
    default = io.BytesIO()
    image.save(default, format="PNG")
    assert len(png_bytes(image)) < len(default.getvalue())  # smaller than Pillow's default PNG too


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (300, 17), (5, 6, 3), (64, 48, 3)])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_encode_png_is_lossless_for_grey_and_rgb(shape, level):
    pixels = np.random.default_rng(sum(shape) + level).integers(0, 256, shape, dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(pixels, level))))
    assert decoded.shape == pixels.shape and np.array_equal(decoded, pixels)


def test_non_grey_rgb_keeps_its_colours():
    pixels = np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(_decode(png_bytes(Image.fromarray(pixels, "RGB"))), pixels)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint16), np.zeros((4, 4, 4), np.uint8), np.zeros(4, np.uint8)])
def test_encode_png_rejects_other_arrays(bad):
    with pytest.raises(ValueError, match="expected \\(H, W\\) or \\(H, W, 3\\) uint8"):
        encode_png(bad)


def test_default_timeout_is_bounded_and_overridable(monkeypatch):
    monkeypatch.setenv("MV_TEST_KEY", "EMPTY")
    opts = {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "MV_TEST_KEY", "served_name": "m"}
    backend = OpenAIBackend(None, opts)
    timeout = backend._client.timeout
    assert DEFAULT_TIMEOUT_S == 180.0
    assert (timeout.read, timeout.connect) == (DEFAULT_TIMEOUT_S, CONNECT_TIMEOUT_S)
    longer = OpenAIBackend(None, {**opts, "timeout": "600"})._client.timeout
    assert (longer.read, longer.connect) == (600.0, CONNECT_TIMEOUT_S)
    short = OpenAIBackend(None, {**opts, "timeout": 2})._client.timeout
    assert (short.read, short.connect) == (2.0, 2.0)
