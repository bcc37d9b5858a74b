"""Image geometry of stock lmms-eval models, read off the live model instance (docs/reference.md §3.6, §3.7).

docs/reference.md §3.7 resolves the geometry from MEDVISION_GEOMETRY, then the active plugin adapter, then a `geometry:`
key in the task's kwargs block for the `--model` name. The plugin ships no such blocks; instead, for the stock
lmms-eval 0.7.x models below, this module derives the rule from the instance lmms-eval actually built, so a
user's `max_pixels=...` (or `max_num=...`, a checkpoint's grid, ...) changes the stated pixel size with it:

* `qwen2_5_vl`, chat class (the default route): qwen-vl-utils' per-image defaults, then the processor's
  `image_processor.size` (two smart resizes);
* `qwen2_5_vl`, simple class (`--force_simple`): the instance's `min_pixels`/`max_pixels` (qwen_smart_resize);
* `gemma3`: `processor.image_processor.size` (fixed), `do_pan_and_scan` noted;
* `llava_onevision` (LLaVA-NeXT code): `_config.image_aspect_ratio`, `image_grid_pinpoints` and the processor
  size (llava_ov_anyres, clip336_pad or fixed);
* `internvl3`: `max_num`, `total_max_num`; tiles are chosen without counting the thumbnail (internvl_tiles);
* `llama_vision`: `processor.image_processor.size` and `max_image_tiles` (mllama_tiles);
* `vllm` (chat and simple): the checkpoint's `config.json`/`preprocessor_config.json` (local folder or HF
  cache, never the network) and `mm_processor_kwargs`, per architecture;
* `openai`: nothing can be read (the server's processor is invisible), so the user must declare it.

Geometry strings may chain stages with `>` (`geometry.perceive_chain`, applied left to right), e.g. the chat
Qwen2.5-VL route resizes with qwen-vl-utils' defaults first and then with the processor's limits:
`qwen_smart_resize:min_pixels=3136,max_pixels=12845056 > qwen_smart_resize:min_pixels=200704,max_pixels=1605632`.
Only the last stage may pad; the stated spacing uses the last stage's content against the slice given to
the first.

The instance is captured by `medvision_tasks.taskhook` (wrapping `lmms.__init__` and `create_from_arg_*`);
`note_model_instance` is the only writer.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SettingsError
from .geometry import LLAVA_OV_DEFAULT_GRID_PINPOINTS, STAGE_SEPARATOR, parse_geometry, split_stages

# qwen-vl-utils per-image defaults (IMAGE_MIN/MAX_TOKEN_NUM x 28^2), applied when a message sets no limits.
QWEN_VL_UTILS_MIN_PIXELS = 4 * 28 * 28
QWEN_VL_UTILS_MAX_PIXELS = 16384 * 28 * 28
QWEN_VL_UTILS_FACTOR = 28
# What every official Qwen2/2.5-VL checkpoint's preprocessor_config.json declares.
QWEN_CHECKPOINT_MIN_PIXELS = 3136
QWEN_CHECKPOINT_MAX_PIXELS = 12845056
# lmms-eval's InternVL3 `load_image` tiles at 448 (not configurable) and does not count its thumbnail.
LMMS_INTERNVL3_IMAGE_SIZE = 448
STOCK_MODELS = ("qwen2_5_vl", "gemma3", "llava_onevision", "internvl3", "llama_vision", "vllm")


class StockGeometryUnavailable(SettingsError):
    """A stock model whose image geometry cannot be derived (e.g. `openai`); the message says why."""


@dataclass(frozen=True)
class DerivedGeometry:
    """A geometry string derived from a live model, where it came from, and caveats for the record."""

    rule: str
    source: str
    notes: tuple[str, ...] = field(default_factory=tuple)


# ----------------------------------------------------------------------------------- live instance
_LIVE: dict[str, Any] = {"ref": None, "args": None}
# (weak reference to the instance, its derivation): one entry, checked by identity (ids are reused).
_DERIVED: list[tuple[Any, DerivedGeometry]] = []


def note_model_instance(instance: Any, model_args: dict[str, Any] | None = None) -> None:
    """Remember the lmms-eval model being built or just built (and the args it was created from)."""
    try:
        ref: Callable[[], Any] = weakref.ref(instance)
    except TypeError:
        ref = lambda: instance  # noqa: E731 - objects without weakref support are held strongly
    previous = _LIVE["ref"]() if _LIVE["ref"] is not None else None
    if previous is not instance or model_args is not None:
        _LIVE["args"] = dict(model_args) if model_args is not None else None
    _LIVE["ref"] = ref
    _DERIVED.clear()


def live_model() -> Any | None:
    """The lmms-eval model instance noted last, or None."""
    return _LIVE["ref"]() if _LIVE["ref"] is not None else None


def live_model_args() -> dict[str, Any] | None:
    """The parsed `--model_args` the live model was created from, when known."""
    return _LIVE["args"]


def forget_model_instance() -> None:
    """Drop the live instance and every cached derivation (tests)."""
    _LIVE.update(ref=None, args=None)
    _DERIVED.clear()


# ---------------------------------------------------------------------------------------- helpers
def _size_value(size: Any, *keys: str) -> int | None:
    """First positive int among `keys` of a processor size (dict, SizeDict or object)."""
    for key in keys:
        value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None


def _image_processor(instance: Any) -> Any:
    processor = getattr(instance, "processor", None)
    return getattr(processor, "image_processor", processor)


def _qwen_stage(min_pixels: int, max_pixels: int, factor: int = QWEN_VL_UTILS_FACTOR) -> str:
    extra = "" if factor == QWEN_VL_UTILS_FACTOR else f",factor={factor}"
    return f"qwen_smart_resize:min_pixels={int(min_pixels)},max_pixels={int(max_pixels)}{extra}"


def _qwen_processor_limits(image_processor: Any) -> tuple[int, int, int] | None:
    """(min_pixels, max_pixels, factor) of a transformers Qwen2-VL image processor, if readable."""
    if image_processor is None:
        return None
    size = getattr(image_processor, "size", None)
    low = _size_value(size, "shortest_edge", "min_pixels") if size is not None else None
    high = _size_value(size, "longest_edge", "max_pixels") if size is not None else None
    low = low or _size_value(image_processor, "min_pixels")
    high = high or _size_value(image_processor, "max_pixels")
    if not (low and high):
        return None
    patch = _size_value(image_processor, "patch_size") or 14
    merge = _size_value(image_processor, "merge_size") or 2
    return low, high, patch * merge


def _qwen_vl_utils_defaults() -> tuple[int, int]:
    """Per-image limits qwen-vl-utils applies when a message sets none (installed version, else its 0.0.14 values)."""
    try:
        import qwen_vl_utils.vision_process as vp
    except Exception:
        return QWEN_VL_UTILS_MIN_PIXELS, QWEN_VL_UTILS_MAX_PIXELS
    factor = QWEN_VL_UTILS_FACTOR
    if hasattr(vp, "IMAGE_MIN_TOKEN_NUM") and hasattr(vp, "IMAGE_MAX_TOKEN_NUM"):
        return int(vp.IMAGE_MIN_TOKEN_NUM) * factor**2, int(vp.IMAGE_MAX_TOKEN_NUM) * factor**2
    low = int(getattr(vp, "MIN_PIXELS", QWEN_VL_UTILS_MIN_PIXELS))
    return low, int(getattr(vp, "MAX_PIXELS", QWEN_VL_UTILS_MAX_PIXELS))


def _class_label(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# ------------------------------------------------------------------------------- per-class rules
def _qwen2_5_vl_simple(instance: Any) -> DerivedGeometry:
    """Simple Qwen2_5_VL: qwen-vl-utils resizes with the instance's limits; the processor's pass is then a no-op."""
    low, high = getattr(instance, "min_pixels", None), getattr(instance, "max_pixels", None)
    limits = _qwen_processor_limits(_image_processor(instance))
    if not (isinstance(low, int) and isinstance(high, int)):
        if limits is None:
            raise StockGeometryUnavailable("qwen2_5_vl: neither min_pixels/max_pixels nor the processor size is set")
        low, high = limits[0], limits[1]
    stages = [_qwen_stage(low, high)]
    if limits is not None and (limits[0], limits[1], limits[2]) != (low, high, QWEN_VL_UTILS_FACTOR):
        stages.append(_qwen_stage(*limits))
    return DerivedGeometry(f" {STAGE_SEPARATOR} ".join(stages), "")


def _qwen2_5_vl_chat(instance: Any) -> DerivedGeometry:
    """Chat Qwen2_5_VL: images carry no limits, so qwen-vl-utils' defaults resize first, then the processor."""
    limits = _qwen_processor_limits(_image_processor(instance))
    if limits is None:
        low, high = getattr(instance, "min_pixels", None), getattr(instance, "max_pixels", None)
        if not (isinstance(low, int) and isinstance(high, int)):
            raise StockGeometryUnavailable("qwen2_5_vl: the processor's size (min/max pixels) cannot be read")
        limits = (low, high, QWEN_VL_UTILS_FACTOR)
    first = _qwen_vl_utils_defaults()
    stages = [_qwen_stage(*first)]
    if (first[0], first[1], QWEN_VL_UTILS_FACTOR) != limits:
        stages.append(_qwen_stage(*limits))
    notes = ("qwen-vl-utils resizes each image with its default limits before the processor resizes it again",)
    return DerivedGeometry(f" {STAGE_SEPARATOR} ".join(stages), "", notes if len(stages) > 1 else ())


def _fixed_from_size(name: str, size: Any) -> str:
    height = _size_value(size, "height", "shortest_edge")
    width = _size_value(size, "width", "shortest_edge")
    if height is None or width is None or height != width:
        raise StockGeometryUnavailable(f"{name}: the image processor size {size!r} is not a square")
    return f"fixed:size={height}"


def _gemma3(instance: Any) -> DerivedGeometry:
    """Gemma3: every image is stretched to the processor's square size (896 for the released checkpoints)."""
    image_processor = _image_processor(instance)
    size = getattr(image_processor, "size", None)
    if size is None:
        raise StockGeometryUnavailable("gemma3: processor.image_processor.size cannot be read")
    notes: tuple[str, ...] = ()
    if getattr(image_processor, "do_pan_and_scan", None):
        notes = ("pan-and-scan crops are sent too; the stated spacing is that of the full-image view",)
    return DerivedGeometry(_fixed_from_size("gemma3", size), "", notes)


def _llava_grid(grid: Any, patch: int) -> list[tuple[int, int]]:
    """LLaVA-NeXT grid pinpoints as (h, w) pairs, in the order its `select_best_resolution` scans them.

    `(AxB),...,(CxD)` ranges expand to every (i, j) times the patch size; LLaVA-NeXT reads a pair as (width,
    height), so each is swapped here.
    """
    if isinstance(grid, str) and "x" in grid:
        matches = re.findall(r"\((\d+)x(\d+)\)", grid)
        if not matches:
            raise StockGeometryUnavailable(f"llava_onevision: cannot read image_grid_pinpoints {grid!r}")
        (a0, b0), (a1, b1) = (tuple(map(int, matches[0])), tuple(map(int, matches[-1])))
        pairs = [(i * patch, j * patch) for i in range(a0, a1 + 1) for j in range(b0, b1 + 1)]
    else:
        if isinstance(grid, str):
            grid = json.loads(grid)
        pairs = [(int(p[0]), int(p[1])) for p in grid]
    return [(h, w) for w, h in pairs]


def _grid_text(grid_hw: list[tuple[int, int]]) -> str:
    if [tuple(p) for p in grid_hw] == list(LLAVA_OV_DEFAULT_GRID_PINPOINTS):
        return ""
    return ":grid_pinpoints=" + ";".join(f"{h}x{w}" for h, w in grid_hw)


def _llava_onevision(instance: Any) -> DerivedGeometry:
    """LLaVA-NeXT `process_images`: anyres picks a grid canvas; `pad` pads to a square; else a plain resize."""
    config = getattr(instance, "_config", None) or getattr(instance, "config", None)
    image_processor = getattr(instance, "_image_processor", None) or _image_processor(instance)
    aspect = getattr(config, "image_aspect_ratio", None)
    size = getattr(image_processor, "size", None)
    square = isinstance(size, (list, tuple)) or _size_value(size, "height") is not None
    if isinstance(size, (list, tuple)) and size:
        patch: int | None = int(size[0])
    else:
        patch = _size_value(size, "shortest_edge", "height") if size is not None else None
    if not patch:
        raise StockGeometryUnavailable("llava_onevision: the image processor's size cannot be read")
    if isinstance(aspect, str) and (aspect == "anyres" or "anyres_max" in aspect):
        grid = getattr(config, "image_grid_pinpoints", None)
        if not grid:
            raise StockGeometryUnavailable("llava_onevision: the model config has no image_grid_pinpoints")
        return DerivedGeometry("llava_ov_anyres" + _grid_text(_llava_grid(grid, patch)), "")
    if aspect == "pad":
        return DerivedGeometry(f"clip336_pad:size={patch}", "")
    if aspect not in ("highres", "crop_split") and square:
        return DerivedGeometry(f"fixed:size={patch}", "")
    raise StockGeometryUnavailable(
        f"llava_onevision: image_aspect_ratio {aspect!r} with processor size {size!r} has no geometry rule"
    )


def _internvl3(instance: Any) -> DerivedGeometry:
    """lmms-eval InternVL3: `load_image(max_num=max(1, min(max_num, total_max_num // 1)))` at 448 px."""
    if getattr(instance, "modality", "image") != "image":
        raise StockGeometryUnavailable(f"internvl3: modality={instance.modality!r} does not process images as images")
    max_num = getattr(instance, "max_num", None)
    if not isinstance(max_num, int):
        raise StockGeometryUnavailable("internvl3: the instance has no integer max_num")
    total = getattr(instance, "total_max_num", None)
    tiles = max(1, min(max_num, total)) if isinstance(total, int) else max(1, max_num)
    notes = ("the thumbnail is appended after the tiles are chosen, so it is not counted (use_thumbnail=false)",)
    rule = f"internvl_tiles:image_size={LMMS_INTERNVL3_IMAGE_SIZE},max_num={tiles},use_thumbnail=false"
    return DerivedGeometry(rule, "", notes)


def _llama_vision(instance: Any) -> DerivedGeometry:
    """Mllama processor: tiles of `size` px, at most `max_image_tiles`."""
    image_processor = _image_processor(instance)
    size = getattr(image_processor, "size", None)
    tile = _size_value(size, "height") if size is not None else None
    tiles = getattr(image_processor, "max_image_tiles", None)
    if not tile or not isinstance(tiles, int):
        raise StockGeometryUnavailable("llama_vision: processor size/max_image_tiles cannot be read")
    return DerivedGeometry(f"mllama_tiles:tile_size={tile},max_image_tiles={tiles}", "")


# ----------------------------------------------------------------------------------------- vllm
def _read_checkpoint_json(model: str, filename: str) -> dict[str, Any] | None:
    """A JSON file of a local checkpoint folder or of the local HF cache (never the network)."""
    try:
        folder = Path(model).expanduser()
        if folder.is_dir():
            path: Any = folder / filename
        else:
            from huggingface_hub import try_to_load_from_cache

            path = try_to_load_from_cache(model, filename)
        if isinstance(path, (str, Path)) and Path(path).is_file():
            data = json.loads(Path(path).read_text())
            return data if isinstance(data, dict) else None
    except Exception:
        return None
    return None


_VLLM_NAME_PATTERNS = (
    (("qwen2-vl", "qwen2.5-vl", "qwen2_5_vl", "qwen2_vl", "lingshu", "medvision-v0"), "qwen2_5_vl"),
    (("gemma-3", "gemma3", "medgemma"), "gemma3"),
    (("internvl3", "internvl2", "internvl-"), "internvl_chat"),
    (("llama-3.2", "vision"), "mllama"),
    (("llava-onevision",), "llava_onevision"),
)


def _vllm_architecture(model: str, config: dict[str, Any] | None) -> tuple[str | None, str]:
    """(model_type, how it was found) from config.json, else from the model name."""
    if config and isinstance(config.get("model_type"), str):
        return config["model_type"], "config.json"
    low = model.lower()
    for patterns, model_type in _VLLM_NAME_PATTERNS:
        hits = [p in low for p in patterns]
        if (model_type == "mllama" and all(hits)) or (model_type != "mllama" and any(hits)):
            return model_type, "model name"
    return None, ""


def _mm_processor_kwargs(instance: Any) -> dict[str, Any]:
    """`mm_processor_kwargs` given to vllm.LLM: from the parsed model args, else from the engine's config."""
    args = live_model_args() if live_model() is instance else None
    value: Any = (args or {}).get("mm_processor_kwargs")
    if value is None:
        engine = getattr(getattr(instance, "client", None), "llm_engine", None)
        model_config = getattr(engine, "model_config", None)
        value = getattr(model_config, "mm_processor_kwargs", None)
        if value is None:
            value = getattr(getattr(model_config, "multimodal_config", None), "mm_processor_kwargs", None)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise StockGeometryUnavailable(f"vllm: mm_processor_kwargs {value!r} is not JSON") from None
    return dict(value) if isinstance(value, dict) else {}


def _vllm(instance: Any) -> DerivedGeometry:
    """vLLM processes the raw image with the checkpoint's processor and `mm_processor_kwargs`.

    lmms-eval's `max_pixels` model arg reaches video frames only; it does not limit images.
    """
    model = getattr(instance, "model", None)
    if not isinstance(model, str):
        raise StockGeometryUnavailable("vllm: the instance has no model name")
    config = _read_checkpoint_json(model, "config.json")
    model_type, found_by = _vllm_architecture(model, config)
    mm_kwargs = _mm_processor_kwargs(instance)
    notes: list[str] = []
    if found_by == "model name":
        notes.append(f"config.json of {model} not found locally; architecture inferred from the model name")
    preprocessor = _read_checkpoint_json(model, "preprocessor_config.json") or {}
    if model_type in ("qwen2_vl", "qwen2_5_vl"):
        size = mm_kwargs.get("size") or {}
        low = mm_kwargs.get("min_pixels") or _size_value(size, "shortest_edge")
        high = mm_kwargs.get("max_pixels") or _size_value(size, "longest_edge")
        checkpoint_size = preprocessor.get("size") or {}
        low = low or preprocessor.get("min_pixels") or _size_value(checkpoint_size, "shortest_edge")
        high = high or preprocessor.get("max_pixels") or _size_value(checkpoint_size, "longest_edge")
        if not (low and high):
            notes.append(
                "preprocessor_config.json not found locally; assumed the released Qwen2/2.5-VL limits "
                f"{QWEN_CHECKPOINT_MIN_PIXELS}..{QWEN_CHECKPOINT_MAX_PIXELS}"
            )
            low, high = low or QWEN_CHECKPOINT_MIN_PIXELS, high or QWEN_CHECKPOINT_MAX_PIXELS
        factor = int(preprocessor.get("patch_size", 14)) * int(preprocessor.get("merge_size", 2))
        return DerivedGeometry(_qwen_stage(int(low), int(high), factor), "", tuple(notes))
    if model_type == "gemma3":
        size = preprocessor.get("size") or {"height": 896, "width": 896}
        if mm_kwargs.get("do_pan_and_scan"):
            notes.append("pan-and-scan crops are sent too; the stated spacing is that of the full-image view")
        return DerivedGeometry(_fixed_from_size("vllm gemma3", size), "", tuple(notes))
    if model_type == "internvl_chat":
        vision = (config or {}).get("vision_config") or {}
        image_size = int((config or {}).get("force_image_size") or vision.get("image_size") or 448)
        max_num = int(mm_kwargs.get("max_dynamic_patch") or (config or {}).get("max_dynamic_patch") or 12)
        thumbnail = bool((config or {}).get("use_thumbnail", True))
        rule = f"internvl_tiles:image_size={image_size},max_num={max_num},use_thumbnail={str(thumbnail).lower()}"
        return DerivedGeometry(rule, "", tuple(notes))
    if model_type == "mllama":
        size = preprocessor.get("size") or {"height": 560}
        tiles = int(preprocessor.get("max_image_tiles", 4))
        return DerivedGeometry(f"mllama_tiles:tile_size={_size_value(size, 'height')},max_image_tiles={tiles}", "")
    if model_type == "llava_onevision":
        grid = (config or {}).get("image_grid_pinpoints")
        text = "" if not grid else _grid_text([(int(h), int(w)) for h, w in grid])
        return DerivedGeometry("llava_ov_anyres" + text, "", tuple(notes))
    raise StockGeometryUnavailable(
        f"vllm: no geometry rule for model {model!r} (architecture {model_type or 'unknown'}); the plugin derives "
        "it for Qwen2/2.5-VL, Gemma3, InternVL (chat format), Mllama and LLaVA-OneVision checkpoints"
    )


def _openai(instance: Any) -> DerivedGeometry:
    raise StockGeometryUnavailable(
        "openai: images go to an OpenAI-compatible server whose image processor the plugin cannot see, so the "
        "geometry must be declared"
    )


# (module, class name) -> rule; the first class of the instance's MRO found here decides.
_RULES: dict[tuple[str, str], Callable[[Any], DerivedGeometry]] = {
    ("lmms_eval.models.chat.qwen2_5_vl", "Qwen2_5_VL"): _qwen2_5_vl_chat,
    ("lmms_eval.models.simple.qwen2_5_vl", "Qwen2_5_VL"): _qwen2_5_vl_simple,
    ("lmms_eval.models.simple.gemma3", "Gemma3"): _gemma3,
    ("lmms_eval.models.simple.llava_onevision", "Llava_OneVision"): _llava_onevision,
    ("lmms_eval.models.simple.internvl3", "InternVL3"): _internvl3,
    ("lmms_eval.models.simple.llama_vision", "LlamaVision"): _llama_vision,
    ("lmms_eval.models.chat.vllm", "VLLM"): _vllm,
    ("lmms_eval.models.simple.vllm", "VLLM"): _vllm,
    ("lmms_eval.models.chat.openai", "OpenAICompatible"): _openai,
    ("lmms_eval.models.simple.openai", "OpenAICompatible"): _openai,
}


def derive_stock_geometry(instance: Any | None = None) -> DerivedGeometry | None:
    """The geometry of a stock lmms-eval model instance (default: the live one), or None for other models.

    Raises StockGeometryUnavailable for a known stock class whose geometry cannot be known (`openai`, an
    unreadable processor, an unsupported vLLM architecture) and SettingsError when the derived rule is invalid.
    """
    instance = live_model() if instance is None else instance
    if instance is None:
        return None
    if _DERIVED and _DERIVED[0][0]() is instance:
        return _DERIVED[0][1]
    for cls in type(instance).__mro__:
        rule_fn = _RULES.get((cls.__module__, cls.__name__))
        if rule_fn is None:
            continue
        derived = rule_fn(instance)
        for stage in split_stages(derived.rule):
            parse_geometry(stage)
        derived = DerivedGeometry(derived.rule, f"stock:{_class_label(cls)}", derived.notes)
        _DERIVED.clear()
        try:
            _DERIVED.append((weakref.ref(instance), derived))
        except TypeError:
            pass  # not weak-referenceable: derive again next time
        return derived
    return None
