"""Perceived image geometry and the stated pixel size (docs/reference.md §3.6, §3.7).

A model's image processor resizes (and sometimes pads) the slice, so the prompt states the spacing at the
resolution the model sees. Each geometry rule maps a slice shape (H, W) to two shapes:

* ``canvas`` (Hc, Wc): the full processed image, padding included; CoT prompts state it as ``Wc x Hc``.
* ``content`` (Hn, Wn): the part of the canvas that holds the slice; the stated spacing uses it.

Conventions: every shape is (height, width) in pixels; every spacing is (px_h, px_w) in mm unless the
name ends in ``_wh``. Spacings are computed in float64 (Python ``float``). ``fix=False`` reproduces the v1
pipeline, including its official bugs; ``fix=True`` is ``perceived_size_fix=1``.

Geometry strings have the form ``rule[:k=v,...]`` (e.g. ``qwen_smart_resize:max_pixels=1605632``);
``fixed(896)`` and ``clip336_pad(336)`` are short for ``fixed:size=896`` and ``clip336_pad:size=336``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medvision_metrics.options import bool_word, closest_match

from medvision_tasks.errors import SettingsError

# Qwen2-VL / Qwen2.5-VL smart resize: factor = patch 14 x merge 2; processor default pixel limits.
QWEN_FACTOR = 28
QWEN_MIN_PIXELS = 3136
QWEN_MAX_PIXELS = 12845056
# The Qwen processors refuse images whose long/short side ratio exceeds this.
QWEN_MAX_ASPECT_RATIO = 200

# InternVL3 dynamic tiling: tile side, dynamic tiles (the thumbnail adds one more), minimum tiles.
INTERNVL_IMAGE_SIZE = 448
INTERNVL_MAX_NUM = 12
INTERNVL_MIN_NUM = 1

# LLaVA-OneVision anyres: default grid of llava-hf/llava-onevision-qwen2-72b-ov-hf, (h, w) pairs.
LLAVA_OV_GRID_SIDES = (384, 768, 1152, 1536, 1920, 2304)
LLAVA_OV_DEFAULT_GRID_PINPOINTS: tuple[tuple[int, int], ...] = tuple(
    (grid_h, grid_w) for grid_h in LLAVA_OV_GRID_SIDES for grid_w in LLAVA_OV_GRID_SIDES
)

# CLIP ViT-L/14-336 with pad-to-square (HuatuoGPT-Vision, HealthGPT-L14).
CLIP336_SIZE = 336

# Llama 3.2 Vision (Mllama) tiling.
MLLAMA_TILE_SIZE = 560
MLLAMA_MAX_IMAGE_TILES = 4

# Parameters of each rule with their defaults; _REQUIRED marks a parameter without a default.
_REQUIRED: Any = object()
_RULE_DEFAULTS: dict[str, dict[str, Any]] = {
    "qwen_smart_resize": {
        "min_pixels": QWEN_MIN_PIXELS,
        "max_pixels": QWEN_MAX_PIXELS,
        "factor": QWEN_FACTOR,
    },
    "fixed": {"size": _REQUIRED},
    "internvl_tiles": {
        "image_size": INTERNVL_IMAGE_SIZE,
        "max_num": INTERNVL_MAX_NUM,
        "use_thumbnail": True,
    },
    "llava_ov_anyres": {"grid_pinpoints": None},
    "clip336_pad": {"size": CLIP336_SIZE},
    "mllama_tiles": {"tile_size": MLLAMA_TILE_SIZE, "max_image_tiles": MLLAMA_MAX_IMAGE_TILES},
    "native": {},
}
GEOMETRY_RULES: tuple[str, ...] = tuple(sorted(_RULE_DEFAULTS))
# Rules that accept the short form ``rule(value)`` and the parameter that value sets.
# Chained geometry strings apply their stages left to right: "rule:k=v > rule:k=v".
STAGE_SEPARATOR = ">"
_SHORT_FORM_PARAM = {"fixed": "size", "clip336_pad": "size"}
_BOOL_PARAMS = frozenset({"use_thumbnail"})
_SHORT_FORM_RE = re.compile(r"^([A-Za-z0-9_]+)\((.*)\)$")
_SYNTAX_HINT = "syntax: rule[:k=v,...], e.g. qwen_smart_resize:max_pixels=1605632 or fixed(896)"


@dataclass(frozen=True)
class GeometrySpec:
    """A geometry rule name and the parameters given for it (defaults are filled in by `perceive`)."""

    rule: str
    params: dict


@dataclass(frozen=True)
class PerceivedGeometry:
    """The canvas and content shapes (H, W) that a rule gives for one slice, with the effective params."""

    rule: str
    params: dict
    canvas_hw: tuple[int, int]
    content_hw: tuple[int, int]

    def to_record(self) -> dict:
        """Return a JSON-serialisable dict: rule, params, canvas [H, W], content [H, W]."""
        return {
            "rule": self.rule,
            "params": _json_safe(self.params),
            "canvas": [int(self.canvas_hw[0]), int(self.canvas_hw[1])],
            "content": [int(self.content_hw[0]), int(self.content_hw[1])],
        }


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _closest(word: str, candidates: Sequence[str]) -> str:
    match = closest_match(word, candidates, cutoff=0.0)
    return f"; did you mean {match!r}?" if match else "."


def _names(candidates: Sequence[str]) -> str:
    return ", ".join(sorted(candidates)) if candidates else "(none)"


# ---------------------------------------------------------------------------------------------------
# Parsing and validation
# ---------------------------------------------------------------------------------------------------


def _parse_value(text: str) -> int | float | str:
    """Return ``text`` as an int when integral, else a float, else the stripped string."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer():
        return int(number)
    return number


def parse_geometry(text: str) -> GeometrySpec:
    """Parse ``rule[:k=v,...]`` (or ``fixed(896)``) into a validated `GeometrySpec`.

    Values become int when integral, else float, else str; ``use_thumbnail`` takes true/false and
    ``grid_pinpoints`` takes ``HxW;HxW;...``. Raises `SettingsError` naming the offending part, the valid
    names and the closest match.
    """
    if not isinstance(text, str) or not text.strip():
        raise SettingsError(f"geometry {text!r}: empty geometry string; {_SYNTAX_HINT}.")
    source = text
    head, _, tail = text.strip().partition(":")
    head = head.strip()
    params: dict[str, Any] = {}

    short_form = _SHORT_FORM_RE.match(head)
    rule = short_form.group(1) if short_form else head
    if rule not in _RULE_DEFAULTS:
        raise SettingsError(
            f"geometry {source!r}: unknown rule {rule!r}{_closest(rule, GEOMETRY_RULES)} "
            f"Valid rules: {_names(GEOMETRY_RULES)}; {_SYNTAX_HINT}."
        )
    if short_form:
        if rule not in _SHORT_FORM_PARAM:
            raise SettingsError(
                f"geometry {source!r}: rule {rule!r} has no short form {head!r}; write "
                f"{rule}:k=v,... (short form exists for: {_names(tuple(_SHORT_FORM_PARAM))})."
            )
        params[_SHORT_FORM_PARAM[rule]] = _parse_value(short_form.group(2))

    valid = tuple(_RULE_DEFAULTS[rule])
    if tail.strip():
        for item in tail.split(","):
            key, sep, raw_value = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise SettingsError(
                    f"geometry {source!r}: parameter {item.strip()!r} is not of the form k=v; {_SYNTAX_HINT}."
                )
            if key not in valid:
                raise SettingsError(
                    f"geometry {source!r}: unknown parameter {key!r} for rule {rule!r}"
                    f"{_closest(key, valid)} Valid parameters: {_names(valid)}."
                )
            if key in params:
                raise SettingsError(f"geometry {source!r}: parameter {key!r} is given twice.")
            params[key] = _parse_value(raw_value)

    validated = _validate_params(GeometrySpec(rule=rule, params=params), f"geometry {source!r}")
    return GeometrySpec(rule=rule, params={key: validated[key] for key in params})


def _coerce_bool(context: str, key: str, value: Any) -> bool:
    switch = bool_word(value)
    if switch is not None:
        return switch
    raise SettingsError(f"{context}: {key} must be true or false, got {value!r}.")


def _coerce_positive_int(context: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SettingsError(f"{context}: {key} must be a positive integer, got {value!r}.")
    return int(value)


def _coerce_grid_pinpoints(context: str, value: Any) -> list[list[int]] | None:
    if value is None:
        return None
    if isinstance(value, str):
        pairs: list[Any] = []
        for chunk in re.split(r"[;\s]+", value.strip()):
            if not chunk:
                continue
            height_text, sep, width_text = chunk.lower().partition("x")
            if not sep:
                pairs.append(chunk)
                continue
            pairs.append((_parse_value(height_text), _parse_value(width_text)))
        value = pairs
    if not isinstance(value, (list, tuple)) or not value:
        raise SettingsError(
            f"{context}: grid_pinpoints must be a non-empty list of (height, width) pairs "
            f"(string form HxW;HxW;...), got {value!r}."
        )
    grid: list[list[int]] = []
    for pair in value:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise SettingsError(
                f"{context}: grid_pinpoints entry {pair!r} is not a (height, width) pair "
                f"(string form HxW;HxW;...)."
            )
        grid.append([_coerce_positive_int(context, "grid_pinpoints", side) for side in pair])
    return grid


def _validate_params(spec: GeometrySpec, context: str | None = None) -> dict[str, Any]:
    """Check the names and types of ``spec.params``; return all params of the rule, defaults filled in."""
    rule = spec.rule
    context = context or f"geometry rule {rule!r}"
    if rule not in _RULE_DEFAULTS:
        raise SettingsError(
            f"{context}: unknown rule {rule!r}{_closest(str(rule), GEOMETRY_RULES)} "
            f"Valid rules: {_names(GEOMETRY_RULES)}."
        )
    defaults = _RULE_DEFAULTS[rule]
    valid = tuple(defaults)
    for key in spec.params:
        if key not in defaults:
            raise SettingsError(
                f"{context}: unknown parameter {key!r} for rule {rule!r}{_closest(str(key), valid)} "
                f"Valid parameters: {_names(valid)}."
            )
    result: dict[str, Any] = {}
    for key, default in defaults.items():
        value = spec.params.get(key, default)
        if value is _REQUIRED:
            short = f" or {rule}(N)" if rule in _SHORT_FORM_PARAM else ""
            raise SettingsError(f"{context}: rule {rule!r} needs {key}; write {rule}:{key}=N{short}.")
        if key in _BOOL_PARAMS:
            result[key] = _coerce_bool(context, key, value)
        elif key == "grid_pinpoints":
            result[key] = _coerce_grid_pinpoints(context, value)
        else:
            result[key] = _coerce_positive_int(context, key, value)
    if rule == "qwen_smart_resize" and result["min_pixels"] > result["max_pixels"]:
        raise SettingsError(
            f"{context}: min_pixels ({result['min_pixels']}) exceeds max_pixels ({result['max_pixels']})."
        )
    return result


# ---------------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------------


def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """Return the Qwen2-VL processed size (h, w) of an H x W image.

    1. h, w = each side rounded to a multiple of ``factor`` (Python ``round``, half to even), at least
       ``factor``.
    2. If h*w > max_pixels: beta = sqrt(H*W/max_pixels); h, w = floor(side/beta/factor)*factor.
    3. Else if h*w < min_pixels: beta = sqrt(min_pixels/(H*W)); h, w = ceil(side*beta/factor)*factor.

    Raises ValueError for non-positive sides or a side ratio above ``QWEN_MAX_ASPECT_RATIO``, which the
    Qwen processors refuse.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"smart_resize: image size must be positive, got {height}x{width}.")
    if max(height, width) / min(height, width) > QWEN_MAX_ASPECT_RATIO:
        raise ValueError(
            f"smart_resize: aspect ratio of {height}x{width} exceeds {QWEN_MAX_ASPECT_RATIO}, "
            f"which the Qwen processors refuse."
        )
    resized_h = max(factor, round(height / factor) * factor)
    resized_w = max(factor, round(width / factor) * factor)
    if resized_h * resized_w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        resized_h = math.floor(height / beta / factor) * factor
        resized_w = math.floor(width / beta / factor) * factor
    elif resized_h * resized_w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        resized_h = math.ceil(height * beta / factor) * factor
        resized_w = math.ceil(width * beta / factor) * factor
    return resized_h, resized_w


def llava_ov_select_best_resolution(
    height: int, width: int, grid_pinpoints: Sequence[Sequence[int]]
) -> tuple[int, int]:
    """Return the LLaVA anyres grid entry (h, w) that keeps most of an H x W image.

    For each (h, w): s = min(w/W, h/H), eff = min(floor(W*s)*floor(H*s), W*H). The maximum eff wins;
    ties go to the least wasted area h*w - eff, then to the earlier entry.
    """
    best: tuple[int, int] | None = None
    best_effective = -1
    best_wasted = math.inf
    for grid_h, grid_w in grid_pinpoints:
        scale = min(grid_w / width, grid_h / height)
        effective = min(math.floor(width * scale) * math.floor(height * scale), width * height)
        wasted = grid_h * grid_w - effective
        if effective > best_effective or (effective == best_effective and wasted < best_wasted):
            best = (int(grid_h), int(grid_w))
            best_effective = effective
            best_wasted = wasted
    if best is None:
        raise ValueError("llava_ov_select_best_resolution: grid_pinpoints is empty.")
    return best


def llava_ov_content_size(height: int, width: int, canvas_h: int, canvas_w: int) -> tuple[int, int]:
    """Return the aspect-preserving resize (Hn, Wn) of an H x W image inside a canvas, before padding."""
    scale_w = canvas_w / width
    scale_h = canvas_h / height
    if scale_w < scale_h:
        return min(math.ceil(height * scale_w), canvas_h), canvas_w
    return canvas_h, min(math.ceil(width * scale_h), canvas_w)


def internvl_tile_grid(
    height: int,
    width: int,
    image_size: int = INTERNVL_IMAGE_SIZE,
    max_num: int = INTERNVL_MAX_NUM,
    use_thumbnail: bool = True,
    min_num: int = INTERNVL_MIN_NUM,
) -> tuple[int, int]:
    """Return the InternVL dynamic-tiling grid (cols, rows) for an H x W image.

    Tile counts run from ``min_num`` to ``max_num`` (+1 when ``use_thumbnail`` and max_num != 1, as vLLM
    selects). Candidates are sorted by cols*rows; the one whose cols/rows is closest to W/H wins, and on an
    exact tie a later candidate wins when H*W > 0.5 * image_size**2 * cols*rows.
    """
    if use_thumbnail and max_num != 1:
        max_num += 1
    # A set sorted by tile count, built in the same order as the reference, so equal-count ties resolve alike.
    candidates = {
        (cols, rows)
        for count in range(min_num, max_num + 1)
        for cols in range(1, count + 1)
        for rows in range(1, count + 1)
        if min_num <= cols * rows <= max_num
    }
    ordered = sorted(candidates, key=lambda pair: pair[0] * pair[1])
    aspect_ratio = width / height
    area = width * height
    best = (1, 1)
    best_diff = math.inf
    for cols, rows in ordered:
        diff = abs(aspect_ratio - cols / rows)
        if diff < best_diff:
            best_diff = diff
            best = (cols, rows)
        elif diff == best_diff and area > 0.5 * image_size * image_size * cols * rows:
            best = (cols, rows)
    return best


def mllama_supported_aspect_ratios(max_image_tiles: int) -> list[tuple[int, int]]:
    """Return every tile arrangement (a, b) with a*b <= max_image_tiles, a outer, b inner."""
    return [
        (first, second)
        for first in range(1, max_image_tiles + 1)
        for second in range(1, max_image_tiles + 1)
        if first * second <= max_image_tiles
    ]


def mllama_optimal_tiled_canvas(
    height: int, width: int, max_image_tiles: int = MLLAMA_MAX_IMAGE_TILES, tile_size: int = MLLAMA_TILE_SIZE
) -> tuple[int, int]:
    """Return the Mllama canvas (h, w) for an H x W image (transformers ``get_optimal_tiled_canvas``).

    Each arrangement gives a canvas with scale min(h/H, w/W). The smallest scale >= 1 wins; without one,
    the largest scale < 1. Among canvases with the winning scale, the smallest area (first on a tie) wins.
    """
    canvases = [
        (tiles_h * tile_size, tiles_w * tile_size)
        for tiles_h, tiles_w in mllama_supported_aspect_ratios(max_image_tiles)
    ]
    scales = [min(canvas_h / height, canvas_w / width) for canvas_h, canvas_w in canvases]
    upscaling = [scale for scale in scales if scale >= 1]
    selected = min(upscaling) if upscaling else max(scales)
    chosen = [canvas for canvas, scale in zip(canvases, scales) if scale == selected]
    return min(chosen, key=lambda canvas: canvas[0] * canvas[1])


def mllama_image_size_fit_to_canvas(
    height: int, width: int, canvas_h: int, canvas_w: int, tile_size: int = MLLAMA_TILE_SIZE
) -> tuple[int, int]:
    """Return the Mllama pre-pad resize (h, w) (transformers ``get_image_size_fit_to_canvas``).

    Each target side is the image side clipped to [tile_size, canvas side]; the side with the smaller
    scale takes its target and the other is floor(side * scale), at least 1 and at most its target.
    """
    target_w = min(max(width, tile_size), canvas_w)
    target_h = min(max(height, tile_size), canvas_h)
    scale_h = target_h / height
    scale_w = target_w / width
    if scale_w < scale_h:
        return min(math.floor(height * scale_w) or 1, target_h), target_w
    return target_h, min(math.floor(width * scale_h) or 1, target_w)


def perceive(spec: GeometrySpec, height: int, width: int, fix: bool = False) -> PerceivedGeometry:
    """Return the canvas and content (H, W) that ``spec`` gives for an H x W slice (docs/reference.md §3.6 table).

    ``fix=False`` reproduces v1 (canvas = content = the rule's v1 output, official bugs included);
    ``fix=True`` is ``perceived_size_fix=1``. Raises `SettingsError` for a bad spec, ValueError for a
    non-positive size.
    """
    for name, side in (("height", height), ("width", width)):
        if isinstance(side, bool) or not isinstance(side, int) or side <= 0:
            raise ValueError(f"perceive: {name} must be a positive integer, got {side!r}.")
    params = _validate_params(spec)
    rule = spec.rule

    if rule == "qwen_smart_resize":
        canvas = smart_resize(height, width, params["factor"], params["min_pixels"], params["max_pixels"])
        content = canvas
    elif rule == "fixed":
        canvas = content = (params["size"], params["size"])
    elif rule == "native":
        canvas = content = (height, width)
    elif rule == "internvl_tiles":
        size = params["image_size"]
        if fix:
            cols, rows = internvl_tile_grid(height, width, size, params["max_num"], params["use_thumbnail"])
            canvas = content = (size * rows, size * cols)
        else:
            canvas = content = (size, size)  # Official bug (v1): one 448 tile assumed.
    elif rule == "llava_ov_anyres":
        if params["grid_pinpoints"] is None:
            params["grid_pinpoints"] = [list(pair) for pair in LLAVA_OV_DEFAULT_GRID_PINPOINTS]
        grid = params["grid_pinpoints"]
        if fix:
            canvas = llava_ov_select_best_resolution(height, width, grid)
            content = llava_ov_content_size(height, width, *canvas)
        else:
            # Official bug (v1): PIL (W, H) passed where (H, W) is expected; the result used as (H, W).
            canvas = content = llava_ov_select_best_resolution(width, height, grid)
    elif rule == "clip336_pad":
        size = params["size"]
        canvas = (size, size)
        if fix:
            longest = max(height, width)
            content = (round(height * size / longest), round(width * size / longest))
        else:
            content = canvas  # Official bug (v1): the padded square used for the pixel ratio.
    elif rule == "mllama_tiles":
        tile_size = params["tile_size"]
        optimal = mllama_optimal_tiled_canvas(height, width, params["max_image_tiles"], tile_size)
        content = mllama_image_size_fit_to_canvas(height, width, optimal[0], optimal[1], tile_size)
        if fix:
            # docs/reference.md §3.6: canvas = content rounded up to whole tiles. The transformers processor pads to
            # ``optimal`` instead; the two differ for a few shapes (e.g. 2679x1339: 1120x560 vs 1680x560).
            canvas = (
                math.ceil(content[0] / tile_size) * tile_size,
                math.ceil(content[1] / tile_size) * tile_size,
            )
        else:
            canvas = content
    else:  # pragma: no cover - _validate_params rejects unknown rules
        raise SettingsError(f"geometry rule {rule!r} is unknown; valid rules: {_names(GEOMETRY_RULES)}.")

    return PerceivedGeometry(
        rule=rule,
        params=params,
        canvas_hw=(int(canvas[0]), int(canvas[1])),
        content_hw=(int(content[0]), int(content[1])),
    )


# ---------------------------------------------------------------------------------------------------
# Spacing
# ---------------------------------------------------------------------------------------------------


def split_stages(text: str) -> list[str]:
    """The stage strings of a (possibly chained) geometry string."""
    stages = [part.strip() for part in text.split(STAGE_SEPARATOR)]
    if any(not part for part in stages):
        raise SettingsError(
            f"geometry {text!r}: empty stage; chain stages as 'rule:k=v > rule:k=v' (applied left to right)."
        )
    return stages


def perceive_chain(text: str, height: int, width: int, fix: bool = False) -> tuple[PerceivedGeometry, list[dict]]:
    """Perceived geometry of a chained geometry string and the record of every stage (empty for one stage).

    Each stage sees the previous stage's canvas; every stage but the last must not pad (canvas == content).
    """
    stages = split_stages(text)
    records: list[dict] = []
    h, w = height, width
    perceived: PerceivedGeometry | None = None
    for index, stage in enumerate(stages):
        perceived = perceive(parse_geometry(stage), h, w, fix=fix)
        if index < len(stages) - 1 and perceived.canvas_hw != perceived.content_hw:
            raise SettingsError(
                f"geometry {text!r}: stage {stage!r} pads ({perceived.content_hw} inside {perceived.canvas_hw}); "
                "only the last stage of a chain may pad."
            )
        records.append(perceived.to_record())
        h, w = perceived.canvas_hw
    assert perceived is not None
    return perceived, records if len(stages) > 1 else []


def stated_pixel_size(
    spacing_hw: tuple[float, float], size_hw: tuple[int, int], content_hw: tuple[int, int]
) -> tuple[float, float]:
    """Return the stated pixel size (pw, ph) in mm, width first: (px_w*W/Wn, px_h*H/Hn), float64.

    ``spacing_hw`` is (px_h, px_w) of the H x W slice after any explicit reshape; ``content_hw`` is (Hn, Wn).
    """
    px_h, px_w = float(spacing_hw[0]), float(spacing_hw[1])
    height, width = size_hw
    content_h, content_w = content_hw
    if content_h <= 0 or content_w <= 0:
        raise ValueError(f"stated_pixel_size: content size must be positive, got {content_h}x{content_w}.")
    return px_w * width / content_w, px_h * height / content_h


def reshape_spacing(
    spacing_hw: tuple[float, float], size_hw: tuple[int, int], new_size: int
) -> tuple[float, float]:
    """Return the spacing (px_h*H/N, px_w*W/N) in mm after the explicit N x N reshape, float64."""
    if isinstance(new_size, bool) or not isinstance(new_size, int) or new_size <= 0:
        raise ValueError(f"reshape_spacing: new_size must be a positive integer, got {new_size!r}.")
    px_h, px_w = float(spacing_hw[0]), float(spacing_hw[1])
    height, width = size_hw
    return px_h * height / new_size, px_w * width / new_size
