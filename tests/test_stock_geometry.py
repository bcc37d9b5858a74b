"""Geometry of stock lmms-eval models, derived from the live instance (medvision_tasks.stock_geometry).

Stand-ins carry the module and class names of lmms-eval 0.7.3's stock models and the attributes those
classes set; no weights are loaded. Where transformers or qwen-vl-utils ship the real image processing, the
derived geometry is checked against it on real PIL images.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from medvision_tasks import hooks, stock_geometry
from medvision_tasks.errors import SettingsError
from medvision_tasks.geometry import perceive_chain
from medvision_tasks.settings import register_active_model, resolve_settings
from medvision_tasks.stock_geometry import (
    StockGeometryUnavailable,
    derive_stock_geometry,
    note_model_instance,
)

QWEN_CHAT = ("lmms_eval.models.chat.qwen2_5_vl", "Qwen2_5_VL")
QWEN_SIMPLE = ("lmms_eval.models.simple.qwen2_5_vl", "Qwen2_5_VL")
# Slices of the benchmark and of docs/reference.md §3.6 (H, W), non-square ones included.
SHAPES = [(182, 218), (512, 512), (1935, 2400), (40, 48), (160, 384), (768, 768), (14, 12)]
TL_DEMO_TASK = "medvision_demo_tl_kits23_task01_axial"


def stand_in(module: str, name: str, base: type | None = None, **attrs: Any) -> Any:
    """An object whose class has the given module and name (and optional base), with `attrs` set."""
    cls = type(name, (base,) if base else (), {"__module__": module})
    obj = cls()
    for key, value in attrs.items():
        setattr(obj, key, value)
    return obj


@pytest.fixture(autouse=True)
def _no_live_model():
    stock_geometry.forget_model_instance()
    hooks._KWARGS_BY_TASK.clear()
    yield
    stock_geometry.forget_model_instance()
    hooks._KWARGS_BY_TASK.clear()


def _qwen_processor(min_pixels: int, max_pixels: int) -> Any:
    from transformers import Qwen2VLImageProcessor

    return SimpleNamespace(image_processor=Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels))


def _real_qwen_canvas(image_processor: Any, height: int, width: int, per_image: dict | None) -> tuple[int, int]:
    """What lmms-eval's Qwen2.5-VL feeds the model: qwen-vl-utils `fetch_image`, then the HF processor."""
    import numpy as np
    from PIL import Image
    from qwen_vl_utils.vision_process import fetch_image

    image = Image.fromarray(np.zeros((height, width, 3), np.uint8))
    resized = fetch_image({"image": image, **(per_image or {})})
    grid = image_processor(images=[resized], return_tensors="pt")["image_grid_thw"][0].tolist()
    patch = image_processor.patch_size
    return grid[1] * patch, grid[2] * patch


# ------------------------------------------------------------------------------------------- Qwen
def test_qwen_chat_route_is_two_smart_resizes_and_matches_the_real_pipeline():
    processor = _qwen_processor(256 * 28 * 28, 1605632)  # lmms-eval's Qwen2_5_VL defaults
    model = stand_in(*QWEN_CHAT, processor=processor, min_pixels=256 * 28 * 28, max_pixels=1605632)
    derived = derive_stock_geometry(model)
    assert derived is not None
    assert derived.rule == (
        "qwen_smart_resize:min_pixels=3136,max_pixels=12845056 > qwen_smart_resize:min_pixels=200704,max_pixels=1605632"
    )
    assert derived.source == "stock:lmms_eval.models.chat.qwen2_5_vl.Qwen2_5_VL"
    for height, width in SHAPES:
        perceived, stages = perceive_chain(derived.rule, height, width)
        assert len(stages) == 2
        assert perceived.canvas_hw == _real_qwen_canvas(processor.image_processor, height, width, None), (height, width)
    # The two stages differ from one smart resize with the processor's limits: 182x218 -> 392x532, not 420x504.
    assert perceive_chain(derived.rule, 182, 218)[0].canvas_hw == (392, 532)
    assert perceive_chain("qwen_smart_resize:min_pixels=200704,max_pixels=1605632", 182, 218)[0].canvas_hw == (420, 504)


def test_qwen_simple_route_uses_the_instance_limits_once():
    processor = _qwen_processor(200704, 1605632)
    model = stand_in(*QWEN_SIMPLE, processor=processor, min_pixels=200704, max_pixels=1605632)
    derived = derive_stock_geometry(model)
    assert derived is not None and derived.rule == "qwen_smart_resize:min_pixels=200704,max_pixels=1605632"
    per_image = {"min_pixels": 200704, "max_pixels": 1605632}
    for height, width in SHAPES:
        expected = _real_qwen_canvas(processor.image_processor, height, width, per_image)
        assert perceive_chain(derived.rule, height, width)[0].canvas_hw == expected, (height, width)


def test_qwen_follows_the_users_max_pixels():
    """`--model_args max_pixels=...` reaches the processor; the derived geometry and stated size follow it."""
    default = derive_stock_geometry(stand_in(*QWEN_CHAT, processor=_qwen_processor(200704, 1605632)))
    small = derive_stock_geometry(stand_in(*QWEN_CHAT, processor=_qwen_processor(3136, 200704)))
    assert default is not None and small is not None
    assert "max_pixels=200704" in small.rule and small.rule != default.rule
    # 1935x2400 -> 1932x2408 (qwen-vl-utils), then beta = sqrt(1932*2408/max_pixels):
    # max 1605632: beta 1.7022, 1135.0/28 -> 40, 1414.6/28 -> 50 => 1120x1400;
    # max 200704: beta 4.8146, 401.3/28 -> 14, 500.1/28 -> 17 => 392x476.
    assert perceive_chain(default.rule, 1935, 2400)[0].canvas_hw == (1120, 1400)
    assert perceive_chain(small.rule, 1935, 2400)[0].canvas_hw == (392, 476)


def test_qwen_with_unreadable_processor_is_refused():
    with pytest.raises(StockGeometryUnavailable, match="qwen2_5_vl: the processor's size"):
        derive_stock_geometry(stand_in(*QWEN_CHAT))


# ------------------------------------------------------------------------------------- other HF
def test_gemma3_fixed_size_from_the_processor_and_real_output():
    import numpy as np
    from PIL import Image
    from transformers import Gemma3ImageProcessor

    image_processor = Gemma3ImageProcessor(size={"height": 896, "width": 896})
    model = stand_in(
        "lmms_eval.models.simple.gemma3", "Gemma3", processor=SimpleNamespace(image_processor=image_processor)
    )
    derived = derive_stock_geometry(model)
    assert derived is not None and derived.rule == "fixed:size=896" and derived.notes == ()
    pixels = image_processor(images=[Image.fromarray(np.zeros((160, 384, 3), np.uint8))], return_tensors="pt")
    assert tuple(pixels["pixel_values"].shape[-2:]) == perceive_chain(derived.rule, 160, 384)[0].canvas_hw

    image_processor.do_pan_and_scan = True
    stock_geometry.forget_model_instance()
    panned = derive_stock_geometry(model)
    assert panned is not None and panned.rule == "fixed:size=896" and "pan-and-scan" in panned.notes[0]


def test_llama_vision_tiles_match_the_mllama_processor():
    import numpy as np
    from PIL import Image
    from transformers import MllamaImageProcessor
    from transformers.models.mllama.image_processing_mllama import get_all_supported_aspect_ratios

    from medvision_tasks.geometry import mllama_optimal_tiled_canvas

    image_processor = MllamaImageProcessor(size={"height": 560, "width": 560}, max_image_tiles=4)
    model = stand_in(
        "lmms_eval.models.simple.llama_vision",
        "LlamaVision",
        processor=SimpleNamespace(image_processor=image_processor),
    )
    derived = derive_stock_geometry(model)
    assert derived is not None and derived.rule == "mllama_tiles:tile_size=560,max_image_tiles=4"
    params = perceive_chain(derived.rule, 160, 384)[0].params
    ratios = get_all_supported_aspect_ratios(4)  # (tiles high, tiles wide), ids are 1-based
    for height, width in [(160, 384), (1200, 400), (400, 1200), (1935, 2400), (512, 512)]:
        image = Image.fromarray(np.zeros((height, width, 3), np.uint8))
        ratio_id = int(image_processor(images=[[image]], return_tensors="pt")["aspect_ratio_ids"][0][0])
        tiles_h, tiles_w = ratios[ratio_id - 1]
        canvas = mllama_optimal_tiled_canvas(height, width, params["max_image_tiles"], params["tile_size"])
        assert canvas == (tiles_h * 560, tiles_w * 560), (height, width)
    # docs/reference.md §3.6: 160x384 -> content 233x560.
    assert perceive_chain(derived.rule, 160, 384)[0].content_hw == (233, 560)


def test_internvl3_counts_tiles_without_the_thumbnail():
    model = stand_in("lmms_eval.models.simple.internvl3", "InternVL3", modality="image", max_num=12, total_max_num=64)
    derived = derive_stock_geometry(model)
    assert derived is not None
    assert derived.rule == "internvl_tiles:image_size=448,max_num=12,use_thumbnail=false"
    # A 1:13 slice gets 12 tiles from lmms-eval's load_image (vLLM, which counts the thumbnail, would pick 13).
    assert perceive_chain(derived.rule, 40, 520, fix=True)[0].canvas_hw == (448, 12 * 448)
    assert perceive_chain("internvl_tiles", 40, 520, fix=True)[0].canvas_hw == (448, 13 * 448)
    # v1 (default) keeps the official single-tile bug whatever the tiling.
    assert perceive_chain(derived.rule, 40, 520)[0].canvas_hw == (448, 448)

    capped = stand_in("lmms_eval.models.simple.internvl3", "InternVL3", modality="image", max_num=12, total_max_num=4)
    assert derive_stock_geometry(capped).rule.endswith("max_num=4,use_thumbnail=false")
    video = stand_in("lmms_eval.models.simple.internvl3", "InternVL3", modality="video", max_num=12)
    with pytest.raises(StockGeometryUnavailable, match="modality='video'"):
        derive_stock_geometry(video)


def _llava(aspect: str, grid: Any = "(1x1),...,(6x6)", size: Any = (384, 384)) -> Any:
    return stand_in(
        "lmms_eval.models.simple.llava_onevision",
        "Llava_OneVision",
        _config=SimpleNamespace(image_aspect_ratio=aspect, image_grid_pinpoints=grid),
        _image_processor=SimpleNamespace(size=size, crop_size={"height": 384, "width": 384}),
    )


def test_llava_onevision_anyres_grid_from_the_config():
    derived = derive_stock_geometry(_llava("anyres_max_9"))
    assert derived is not None and derived.rule.startswith("llava_ov_anyres:grid_pinpoints=384x384;768x384;")
    assert derived.rule.count(";") == 35
    # docs/reference.md §3.6 vectors (fixed form) and the v1 bug (W, H swapped).
    assert perceive_chain(derived.rule, 160, 384, fix=True)[0].canvas_hw == (384, 384)
    assert perceive_chain(derived.rule, 160, 384, fix=True)[0].content_hw == (160, 384)
    fixed = perceive_chain(derived.rule, 1935, 2400, fix=True)[0]
    assert (fixed.canvas_hw, fixed.content_hw) == ((1920, 2304), (1858, 2304))
    assert perceive_chain(derived.rule, 1935, 2400)[0].canvas_hw == (2304, 1920)
    # An explicit (width, height) list in LLaVA-NeXT order becomes (height, width) pairs.
    listed = derive_stock_geometry(_llava("anyres", grid=[[768, 384], [384, 384]]))
    assert listed is not None and listed.rule == "llava_ov_anyres:grid_pinpoints=384x768;384x384"


@pytest.mark.parametrize(
    ("aspect", "size", "expected"),
    [("pad", (384, 384), "clip336_pad:size=384"), (None, (384, 384), "fixed:size=384")],
)
def test_llava_onevision_pad_and_square(aspect, size, expected):
    derived = derive_stock_geometry(_llava(aspect, size=size))
    assert derived is not None and derived.rule == expected


def test_llava_onevision_crop_processor_is_refused():
    with pytest.raises(StockGeometryUnavailable, match="image_aspect_ratio 'highres'"):
        derive_stock_geometry(_llava("highres"))


# -------------------------------------------------------------------------------------------- vLLM
def _checkpoint(tmp_path: Path, config: dict, preprocessor: dict | None = None) -> str:
    folder = tmp_path / "ckpt"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return str(folder)


def _vllm(model: str, chat: bool = True) -> Any:
    module = "lmms_eval.models.chat.vllm" if chat else "lmms_eval.models.simple.vllm"
    # lmms-eval's vllm sets max_pixels=1605632, which reaches video frames only.
    return stand_in(module, "VLLM", model=model, max_pixels=1605632, min_image_pixels=28)


def test_vllm_qwen_uses_the_checkpoint_limits_not_lmms_evals_video_max_pixels(tmp_path):
    model = _checkpoint(
        tmp_path,
        {"model_type": "qwen2_5_vl"},
        {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "merge_size": 2},
    )
    instance = _vllm(model)
    note_model_instance(instance, {"model": model})
    derived = derive_stock_geometry()
    assert derived is not None and derived.rule == "qwen_smart_resize:min_pixels=3136,max_pixels=12845056"
    assert derived.source == "stock:lmms_eval.models.chat.vllm.VLLM" and derived.notes == ()


def test_vllm_qwen_follows_mm_processor_kwargs(tmp_path):
    model = _checkpoint(tmp_path, {"model_type": "qwen2_5_vl"}, {"min_pixels": 3136, "max_pixels": 12845056})
    instance = _vllm(model, chat=False)
    note_model_instance(instance, {"model": model, "mm_processor_kwargs": '{"max_pixels": 1605632}'})
    derived = derive_stock_geometry()
    assert derived is not None and derived.rule == "qwen_smart_resize:min_pixels=3136,max_pixels=1605632"
    # Without the captured args, the engine's own model_config is read.
    stock_geometry.forget_model_instance()
    engine = SimpleNamespace(model_config=SimpleNamespace(mm_processor_kwargs={"min_pixels": 200704}))
    instance.client = SimpleNamespace(llm_engine=engine)
    assert derive_stock_geometry(instance).rule == "qwen_smart_resize:min_pixels=200704,max_pixels=12845056"


def test_vllm_by_model_name_when_no_checkpoint_is_local():
    derived = derive_stock_geometry(_vllm("nonexistent-org/Qwen2.5-VL-7B-Instruct"))
    assert derived is not None and derived.rule == "qwen_smart_resize:min_pixels=3136,max_pixels=12845056"
    assert any("model name" in note for note in derived.notes)
    assert any("preprocessor_config.json not found" in note for note in derived.notes)
    gemma = derive_stock_geometry(_vllm("nonexistent-org/medgemma-4b-it"))
    assert gemma is not None and gemma.rule == "fixed:size=896"


def test_vllm_other_architectures(tmp_path):
    internvl = _checkpoint(tmp_path, {"model_type": "internvl_chat", "force_image_size": 448, "max_dynamic_patch": 12})
    assert derive_stock_geometry(_vllm(internvl)).rule == "internvl_tiles:image_size=448,max_num=12,use_thumbnail=true"
    mllama = _checkpoint(
        tmp_path, {"model_type": "mllama"}, {"size": {"height": 560, "width": 560}, "max_image_tiles": 4}
    )
    assert derive_stock_geometry(_vllm(mllama)).rule == "mllama_tiles:tile_size=560,max_image_tiles=4"
    unknown = _checkpoint(tmp_path, {"model_type": "phi3_v"})
    with pytest.raises(StockGeometryUnavailable, match=r"vllm: no geometry rule for model .*architecture phi3_v"):
        derive_stock_geometry(_vllm(unknown))


# ------------------------------------------------------------------------------------------ openai
@pytest.mark.parametrize("module", ["lmms_eval.models.chat.openai", "lmms_eval.models.simple.openai"])
def test_openai_requires_an_explicit_declaration(module):
    with pytest.raises(StockGeometryUnavailable, match="OpenAI-compatible server"):
        derive_stock_geometry(stand_in(module, "OpenAICompatible", model_version="served"))


def test_unknown_models_derive_nothing():
    assert derive_stock_geometry(stand_in("my_models.custom", "MyVLM")) is None
    assert derive_stock_geometry() is None


def test_subclass_of_a_stock_model_uses_its_base():
    base = type("Gemma3", (), {"__module__": "lmms_eval.models.simple.gemma3"})
    child = stand_in(
        "user.models",
        "MyGemma",
        base,
        processor=SimpleNamespace(image_processor=SimpleNamespace(size={"height": 896, "width": 896})),
    )
    derived = derive_stock_geometry(child)
    assert derived is not None and derived.source == "stock:lmms_eval.models.simple.gemma3.Gemma3"


# --------------------------------------------------------------------------------- chains and hooks
def test_chain_syntax_errors_name_the_stage():
    with pytest.raises(SettingsError, match="empty stage"):
        perceive_chain("qwen_smart_resize > ", 100, 100)
    with pytest.raises(SettingsError, match=r"stage 'clip336_pad' pads .* only the last stage"):
        perceive_chain("clip336_pad > native", 160, 384, fix=True)
    with pytest.raises(SettingsError, match="unknown rule 'qwen_smart'"):
        perceive_chain("native > qwen_smart", 160, 384)


@pytest.fixture()
def tl_doc(demo_root) -> dict:
    stub = json.loads((Path(hooks.__file__).parent / "yaml/demo/stubs" / f"{TL_DEMO_TASK}.jsonl").read_text())
    return hooks.build_rows(stub)[0]


def test_prompt_and_record_follow_the_live_stock_model(tl_doc):
    model = stand_in(*QWEN_CHAT, processor=_qwen_processor(200704, 1605632))  # lmms-eval holds the model
    note_model_instance(model, {"pretrained": "x"})
    text, record = hooks.prompt_and_geometry(tl_doc, {"default": {}})
    assert record is not None
    assert record["source"] == "stock:lmms_eval.models.chat.qwen2_5_vl.Qwen2_5_VL"
    assert record["rule"] == "qwen_smart_resize" and len(record["stages"]) == 2
    assert record["params"]["max_pixels"] == 1605632 and "notes" in record
    pw, ph = record["stated_spacing_wh"]
    assert f"{pw:.3f} mm (width) x {ph:.3f} mm (height)" in text


def test_precedence_env_adapter_kwargs_stock(tl_doc, monkeypatch):
    model = stand_in(*QWEN_CHAT, processor=_qwen_processor(200704, 1605632))
    note_model_instance(model)
    settings = resolve_settings(TL_DEMO_TASK)
    kwargs = {"geometry": "fixed(896)"}
    assert hooks.resolve_geometry(settings, None).source.startswith("stock:")
    assert hooks.resolve_geometry(settings, kwargs).source.startswith("kwargs:")
    register_active_model({"adapter": "medvision_x", "geometry": "native"})
    settings = resolve_settings(TL_DEMO_TASK)
    assert hooks.resolve_geometry(settings, kwargs).source == "adapter:medvision_x"
    monkeypatch.setenv("MEDVISION_GEOMETRY", "fixed(448)")
    register_active_model({"adapter": "medvision_x", "geometry": "native"})  # clears frozen settings
    resolved = hooks.resolve_geometry(resolve_settings(TL_DEMO_TASK), kwargs)
    assert (resolved.rule, resolved.source) == ("fixed(448)", "env:MEDVISION_GEOMETRY")


def test_process_results_reuses_the_kwargs_block_doc_to_text_saw(tl_doc):
    hooks.doc_to_text(tl_doc, {"geometry": "fixed(896)"})
    _, record = hooks.prompt_and_geometry(tl_doc, None)  # as process_results calls it
    assert record is not None and record["source"].startswith("kwargs:") and record["canvas"] == [896, 896]


def test_openai_error_names_every_way_to_declare(tl_doc):
    model = stand_in("lmms_eval.models.chat.openai", "OpenAICompatible")
    note_model_instance(model)
    with pytest.raises(SettingsError) as info:
        hooks.doc_to_text(tl_doc, {"default": {}})
    message = str(info.value)
    for needle in (
        "task medvision_demo_tl_kits23_task01_axial",
        "OpenAI-compatible",
        "MEDVISION_GEOMETRY",
        "medvision_qwen2_5_vl",
        "lmms_eval_specific_kwargs",
        "'native'",
    ):
        assert needle in message


def test_no_geometry_at_all_is_an_error(tl_doc):
    with pytest.raises(SettingsError, match="needs the model's image geometry; declare the image geometry"):
        hooks.doc_to_text(tl_doc, {"default": {}})


# ------------------------------------------------------------------------------------- taskhook
def test_taskhook_notes_the_instance_and_its_model_args():
    from lmms_eval.api import model as model_module

    from medvision_tasks.taskhook import patch_model_base

    assert patch_model_base(model_module)
    assert patch_model_base(model_module)  # idempotent

    class TinyModel(model_module.lmms):
        def __init__(self, max_pixels: str = "1", **kwargs: Any) -> None:
            super().__init__()
            self.max_pixels = int(max_pixels)

        def loglikelihood(self, requests):  # pragma: no cover - abstract
            raise NotImplementedError

        def generate_until(self, requests):  # pragma: no cover - abstract
            raise NotImplementedError

        def generate_until_multi_round(self, requests):  # pragma: no cover - abstract
            raise NotImplementedError

    made = TinyModel.create_from_arg_string("max_pixels=802816", {"batch_size": None})
    assert stock_geometry.live_model() is made and made.max_pixels == 802816
    assert stock_geometry.live_model_args() == {"max_pixels": 802816}
    direct = TinyModel()
    assert stock_geometry.live_model() is direct and stock_geometry.live_model_args() is None
    del direct
    assert stock_geometry.live_model() is None  # a weak reference: the plugin never keeps a model alive


def test_taskhook_warns_when_lmms_is_missing():
    fake = types.ModuleType("fake_model_module")
    with pytest.warns(UserWarning, match="geometry of stock models is not derived"):
        from medvision_tasks.taskhook import patch_model_base

        assert not patch_model_base(fake)
    assert "fake_model_module" not in sys.modules
