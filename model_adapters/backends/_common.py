"""Helpers shared by the vllm and openai backends: option checking, sampling values, chat wire form, PNG URLs.

Pure Python plus PIL/numpy; nothing here imports vllm or openai.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from medvision_metrics.options import bool_word, did_you_mean
from PIL import Image

from ..errors import AdapterConfigError

# ---------------------------------------------------------------------------------------------------------------
# Backend options (`--model_args` keys the adapter forwards). lmms-eval turns "1" into 1, "true" into True and
# "0.9" into 0.9, but leaves other strings alone, so every reader below also accepts the string form.
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One backend option: its kind (int, float, bool, str, version, dict), default, and bounds."""

    kind: str
    default: Any
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None


_NULL_WORDS = ("", "none", "null")


def _coerce(backend: str, name: str, value: Any, option: Option) -> Any:
    where = f"backend={backend}: option {name}={value!r}"
    if value is None or (isinstance(value, str) and value.strip().lower() in _NULL_WORDS):
        if option.nullable:
            return None
        raise AdapterConfigError(f"{where} needs a value ({option.kind}); leave it out to use {option.default!r}.")
    if option.kind == "bool":
        switch = bool_word(value)
        if switch is None:
            raise AdapterConfigError(f"{where} is not a boolean; use true or false.")
        return switch
    if option.kind in ("int", "float"):
        try:
            if isinstance(value, bool):
                raise ValueError
            if option.kind == "float":
                number: float | int = float(value)
            elif isinstance(value, float) and value.is_integer():
                number = int(value)
            else:
                number = int(str(value).strip())
        except ValueError:
            raise AdapterConfigError(f"{where} is not an {option.kind}.") from None
        if option.minimum is not None and number < option.minimum:
            raise AdapterConfigError(f"{where} is below the minimum {option.minimum:g}.")
        if option.maximum is not None and number > option.maximum:
            raise AdapterConfigError(f"{where} is above the maximum {option.maximum:g}.")
        return number
    if option.kind == "version":
        if not isinstance(value, str):  # 0.10 parsed as a float would read as 0.1
            raise AdapterConfigError(f"{where}: give the full version string, e.g. 0.10.2.")
        parse_version(value, what=where)
        return value.strip()
    if option.kind == "dict":
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, str):
            try:
                parsed = json.loads(value.strip().strip("'"))
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                return parsed
        raise AdapterConfigError(f'{where} is not a mapping; give a dict or JSON text such as {{"image": 1}}.')
    if option.kind == "str":
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value).strip()
        raise AdapterConfigError(f"{where} is not a string.")
    raise AssertionError(f"unknown option kind {option.kind!r}")


def read_options(backend: str, given: dict[str, Any] | None, spec: dict[str, Option]) -> dict[str, Any]:
    """Validate `given` against `spec`; return every option with defaults filled in.

    Raises:
        AdapterConfigError: an unknown key (with the closest valid one and the full list) or a bad value.
    """
    given = dict(given or {})
    valid = sorted(spec)
    for name in given:
        if name not in spec:
            raise AdapterConfigError(
                f"backend={backend}: unknown option {name!r}.{did_you_mean(name, valid)} "
                f"Valid options: {', '.join(valid)}."
            )
    return {
        name: _coerce(backend, name, given[name], opt) if name in given else opt.default for name, opt in spec.items()
    }


def parse_version(text: str, what: str = "version") -> tuple[int, ...]:
    """Release numbers of a version string: "0.10.2+cu128" -> (0, 10, 2); "0.11.0rc1" -> (0, 11, 0)."""
    from packaging.version import InvalidVersion, Version

    try:
        return tuple(Version(str(text).strip()).release)
    except InvalidVersion:
        raise AdapterConfigError(f"{what}: {text!r} is not a version number such as 0.10.2.") from None


def version_at_most(installed: str, ceiling: str) -> bool:
    """True when the release numbers of `installed` are <= those of `ceiling` (local/dev suffixes ignored)."""
    a, b = parse_version(installed, "installed version"), parse_version(ceiling, "version ceiling")
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)) <= b + (0,) * (width - len(b))


# ---------------------------------------------------------------------------------------------------------------
# Per-request sampling
# ---------------------------------------------------------------------------------------------------------------

SAMPLING_KEYS = (
    "max_new_tokens",
    "temperature",
    "top_p",
    "do_sample",
    "until",
    "seed",
    "repetition_penalty",
    "min_new_tokens",
    "num_beams",
)
DEFAULT_MAX_NEW_TOKENS = 1024


@dataclass(frozen=True)
class Sampling:
    """Backend-neutral sampling values of one request; `temperature == 0` means greedy."""

    max_tokens: int
    temperature: float | None  # None: the checkpoint's generation config decides (Lingshu, docs/reference.md §9 Q7)
    top_p: float | None
    seed: int | None
    stop: list[str]
    repetition_penalty: float | None = None
    min_tokens: int | None = None


def read_sampling(backend: str, sampling: dict[str, Any]) -> Sampling:
    """Turn a GenRequest's `sampling` dict into `Sampling`; `do_sample=False` forces temperature 0 (greedy).

    Raises:
        AdapterConfigError: an unknown key, a bad value, or `num_beams > 1` (no beam search on this backend).
    """
    for name in sampling:
        if name not in SAMPLING_KEYS:
            hint = did_you_mean(name, list(SAMPLING_KEYS))
            raise AdapterConfigError(
                f"backend={backend}: generation setting {name!r} is not supported.{hint} "
                f"Supported: {', '.join(SAMPLING_KEYS)}."
            )

    def number(name: str, cast: type, minimum: float | None = None) -> Any:
        value = sampling.get(name)
        if value is None:
            return None
        try:
            result = cast(value)
        except (TypeError, ValueError):
            raise AdapterConfigError(
                f"backend={backend}: generation setting {name}={value!r} is not a number."
            ) from None
        if minimum is not None and result < minimum:
            raise AdapterConfigError(f"backend={backend}: generation setting {name}={value!r} is below {minimum}.")
        return result

    num_beams = number("num_beams", int, 1)
    if num_beams is not None and num_beams > 1:
        raise AdapterConfigError(
            f"backend={backend}: num_beams={num_beams} (beam search) is not supported; use backend=hf or num_beams=1."
        )
    max_tokens = number("max_new_tokens", int, 1)
    temperature = number("temperature", float, 0.0)
    do_sample = sampling.get("do_sample")
    if do_sample is not None and not isinstance(do_sample, bool):
        do_sample = str(do_sample).strip().lower() in ("true", "1")
    if do_sample is False:
        temperature = 0.0
    elif temperature is None and do_sample:
        temperature = 1.0
    top_p = number("top_p", float, 0.0)
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise AdapterConfigError(f"backend={backend}: generation setting top_p={top_p!r} must lie in (0, 1].")
    return Sampling(
        max_tokens=DEFAULT_MAX_NEW_TOKENS if max_tokens is None else max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=number("seed", int),
        stop=stop_strings(sampling.get("until")),
        repetition_penalty=number("repetition_penalty", float, 0.0),
        min_tokens=number("min_new_tokens", int, 0),
    )


def stop_strings(until: Any) -> list[str]:
    """lmms-eval's `until` as a list of non-empty stop strings (a bare string counts as one)."""
    if until is None:
        return []
    if isinstance(until, str):
        until = [until]
    return [str(s) for s in until if s]


# ---------------------------------------------------------------------------------------------------------------
# Chat wire form and images
# ---------------------------------------------------------------------------------------------------------------

_PNG_MODES = ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA")


def png_bytes(image: Image.Image, compress_level: int = 1) -> bytes:
    """Lossless PNG of `image`, fast: zlib level `compress_level`, and grey-level "L" when R == G == B.

    A grey "L" PNG decodes, after `.convert("RGB")`, to exactly the pixels of the RGB original; MedVision
    slices are grey rendered as RGB, so this cuts the bytes to encode by about three. 8-bit grey and RGB go
    through `fastpng.encode_png` (no per-row filter search, run-length deflate); other modes through Pillow.
    """
    from .fastpng import encode_png

    if image.mode == "RGB":
        pixels = np.asarray(image)
        if np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2]):
            return encode_png(np.ascontiguousarray(pixels[..., 0]), compress_level)
        return encode_png(pixels, compress_level)
    if image.mode == "L":
        return encode_png(np.asarray(image), compress_level)
    if image.mode not in _PNG_MODES:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def png_data_url(image: Image.Image, compress_level: int = 1) -> str:
    """`data:image/png;base64,...` URL of `png_bytes(image, compress_level)`."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image, compress_level)).decode("ascii")


def data_url_part(compress_level: int) -> Callable[[Image.Image], dict[str, Any]]:
    """Image-part builder that sends OpenAI-style `image_url` parts holding PNG data URLs."""

    def build(image: Image.Image) -> dict[str, Any]:
        return {"type": "image_url", "image_url": {"url": png_data_url(image, compress_level)}}

    return build


def to_chat_messages(
    messages: list[dict[str, Any]], image_part: Callable[[Image.Image], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Neutral messages -> OpenAI-style chat messages, keeping roles and content order.

    A message whose content is a single text part is sent as a plain string (the form every chat template
    and server accepts, e.g. for the system prompt); otherwise content is a list of `text` and image parts.

    Raises:
        ValueError: an unknown role or part type, or an image that is not a PIL image.
    """
    wire: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role not in ("system", "user", "assistant"):
            raise ValueError(f"unknown message role {role!r}")
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        parts: list[dict[str, Any]] = []
        for part in content or []:
            kind = part.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": str(part["text"])})
            elif kind == "image":
                image = part.get("image")
                if not isinstance(image, Image.Image):
                    raise ValueError(f"image part holds {type(image).__name__}, not a PIL image")
                parts.append(image_part(image))
            else:
                raise ValueError(f"unknown content part type {kind!r}")
        if len(parts) == 1 and parts[0]["type"] == "text":
            wire.append({"role": role, "content": parts[0]["text"]})
        else:
            wire.append({"role": role, "content": parts})
    return wire
