"""Geometry rules and stated pixel size: every row of the docs/reference.md §3.6 test-vector table, plus parsing
errors."""

from __future__ import annotations

import json

import pytest

from medvision_tasks.errors import SettingsError
from medvision_tasks.geometry import (
    LLAVA_OV_DEFAULT_GRID_PINPOINTS,
    QWEN_FACTOR,
    QWEN_MAX_PIXELS,
    QWEN_MIN_PIXELS,
    GeometrySpec,
    PerceivedGeometry,
    internvl_tile_grid,
    mllama_image_size_fit_to_canvas,
    mllama_optimal_tiled_canvas,
    parse_geometry,
    perceive,
    reshape_spacing,
    smart_resize,
    stated_pixel_size,
)


def _stated(spacing_hw: tuple[float, float], size_hw: tuple[int, int], content_hw: tuple[int, int]) -> str:
    pixel_w, pixel_h = stated_pixel_size(spacing_hw, size_hw, content_hw)
    return f"{pixel_w:.3f} x {pixel_h:.3f}"


def test_qwen_constants() -> None:
    assert (QWEN_FACTOR, QWEN_MIN_PIXELS, QWEN_MAX_PIXELS) == (28, 3136, 12845056)


# --- smart resize ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size_hw", "expected_hw"),
    [
        # 512/28 = 18.29 -> 18 -> 504
        pytest.param((512, 512), (504, 504), id="512sq"),
        # 1935/28 = 69.1 -> 69 -> 1932; 2400/28 = 85.7 -> 86 -> 2408; 4,652,256 px within limits
        pytest.param((1935, 2400), (1932, 2408), id="ceph"),
        # 182/28 = 6.5 -> 6 (half to even) -> 168; 218/28 = 7.79 -> 8 -> 224
        pytest.param((182, 218), (168, 224), id="bankers-rounding"),
        # 160/28 = 5.71 -> 6 -> 168; 384/28 = 13.71 -> 14 -> 392
        pytest.param((160, 384), (168, 392), id="160x384"),
        # 28 x 56 = 1568 < 3136; beta = sqrt(3136/1920) = 1.278; ceil(1.83) = 2 -> 56, ceil(2.19) = 3 -> 84
        pytest.param((40, 48), (56, 84), id="min-pixels"),
        # 4004^2 > 12845056 = 3584^2; beta = 4000/3584; floor(3584/28) = 128 -> 3584
        pytest.param((4000, 4000), (3584, 3584), id="max-pixels"),
    ],
)
def test_smart_resize(size_hw: tuple[int, int], expected_hw: tuple[int, int]) -> None:
    assert smart_resize(*size_hw) == expected_hw
    perceived = perceive(parse_geometry("qwen_smart_resize"), *size_hw)
    assert perceived.canvas_hw == perceived.content_hw == expected_hw
    assert perceive(parse_geometry("qwen_smart_resize"), *size_hw, fix=True) == perceived


def test_smart_resize_explicit_max_pixels() -> None:
    # lmms-eval vllm default max_pixels 1,605,632: 1935x2400 -> beta = sqrt(4644000/1605632) = 1.7007
    # floor(1935/1.7007/28) = 40 -> 1120; floor(2400/1.7007/28) = 50 -> 1400
    spec = parse_geometry("qwen_smart_resize:max_pixels=1605632")
    assert perceive(spec, 1935, 2400).canvas_hw == (1120, 1400)
    assert smart_resize(1935, 2400, max_pixels=1605632) == (1120, 1400)


def test_smart_resize_refuses_extreme_aspect_ratio() -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 5000)


def test_stated_spacing_512_at_070() -> None:
    # 0.70 * 512 / 504 = 0.7111; fixed(896): 0.70 * 512 / 896 = 0.400
    qwen = perceive(parse_geometry("qwen_smart_resize"), 512, 512)
    assert _stated((0.70, 0.70), (512, 512), qwen.content_hw) == "0.711 x 0.711"
    gemma = perceive(parse_geometry("fixed(896)"), 512, 512)
    assert gemma.canvas_hw == gemma.content_hw == (896, 896)
    assert _stated((0.70, 0.70), (512, 512), gemma.content_hw) == "0.400 x 0.400"


def test_stated_spacing_ceph_smart_resize() -> None:
    # pw = 0.1 * 2400 / 2408 = 0.0997; ph = 0.1 * 1935 / 1932 = 0.1002
    qwen = perceive(parse_geometry("qwen_smart_resize"), 1935, 2400)
    assert _stated((0.1, 0.1), (1935, 2400), qwen.content_hw) == "0.100 x 0.100"


# --- fixed / native --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["fixed(448)", "fixed:size=448", " fixed : size = 448 "])
@pytest.mark.parametrize("fix", [False, True])
def test_fixed_448(text: str, fix: bool) -> None:
    perceived = perceive(parse_geometry(text), 182, 218, fix=fix)
    assert perceived.canvas_hw == perceived.content_hw == (448, 448)
    assert perceived.params == {"size": 448}


@pytest.mark.parametrize("fix", [False, True])
def test_native(fix: bool) -> None:
    perceived = perceive(parse_geometry("native"), 182, 218, fix=fix)
    assert perceived.canvas_hw == perceived.content_hw == (182, 218)


# --- clip336_pad -----------------------------------------------------------------------------------


def test_clip336_v1_uses_padded_square() -> None:
    perceived = perceive(parse_geometry("clip336_pad"), 160, 384)
    assert perceived.canvas_hw == perceived.content_hw == (336, 336)


def test_clip336_fixed() -> None:
    # m = 384; content = (round(160*336/384), round(384*336/384)) = (140, 336)
    perceived = perceive(parse_geometry("clip336_pad"), 160, 384, fix=True)
    assert perceived.canvas_hw == (336, 336)
    assert perceived.content_hw == (140, 336)


# --- llava_ov_anyres -------------------------------------------------------------------------------


def test_llava_default_grid() -> None:
    sides = (384, 768, 1152, 1536, 1920, 2304)
    assert set(LLAVA_OV_DEFAULT_GRID_PINPOINTS) == {(h, w) for h in sides for w in sides}
    assert len(LLAVA_OV_DEFAULT_GRID_PINPOINTS) == 36


def test_llava_fixed_160x384() -> None:
    # 384x384: s = min(384/384, 384/160) = 1, eff = 384*160 = W*H (max); least waste among those -> 384x384
    # content: sw = 1 < sh = 2.4 -> (min(ceil(160*1), 384), 384) = (160, 384)
    perceived = perceive(parse_geometry("llava_ov_anyres"), 160, 384, fix=True)
    assert perceived.canvas_hw == (384, 384)
    assert perceived.content_hw == (160, 384)


def test_llava_fixed_ceph() -> None:
    # best canvas 1920x2304; sw = 2304/2400 = 0.96 < sh = 1920/1935 -> (ceil(1935*0.96) = 1858, 2304)
    perceived = perceive(parse_geometry("llava_ov_anyres"), 1935, 2400, fix=True)
    assert perceived.canvas_hw == (1920, 2304)
    assert perceived.content_hw == (1858, 2304)


def test_llava_v1_ceph_swaps_width_and_height() -> None:
    # Official bug: selection run on (W, H) = (2400, 1935) -> (2304, 1920), used as (Hc, Wc).
    # Stated at 0.1 mm: pw = 0.1*2400/1920 = 0.125, ph = 0.1*1935/2304 = 0.084
    # (written H x W: 0.084 x 0.125).
    perceived = perceive(parse_geometry("llava_ov_anyres"), 1935, 2400)
    assert perceived.canvas_hw == perceived.content_hw == (2304, 1920)
    assert _stated((0.1, 0.1), (1935, 2400), perceived.content_hw) == "0.125 x 0.084"


def test_llava_custom_grid() -> None:
    spec = parse_geometry("llava_ov_anyres:grid_pinpoints=384x384;384x768")
    assert spec.params == {"grid_pinpoints": [[384, 384], [384, 768]]}
    perceived = perceive(spec, 160, 384, fix=True)
    assert perceived.canvas_hw == (384, 384)
    assert perceived.params["grid_pinpoints"] == [[384, 384], [384, 768]]


# --- internvl_tiles --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size_hw", "expected_hw"),
    [
        # W/H = 1.240; closest allowed cols/rows is 4/3 (12 tiles) -> (448*3, 448*4)
        pytest.param((1935, 2400), (1344, 1792), id="ceph"),
        # ratio 1: (1,1) first; tie with (2,2) and 768^2 > 0.5*448^2*4 -> (2,2); 9 tiles: 589824 < 903168
        pytest.param((768, 768), (896, 896), id="768sq"),
        # 512^2 = 262144 < 0.5*448^2*4 = 401408 -> stays (1,1)
        pytest.param((512, 512), (448, 448), id="512sq"),
        # W/H = 1.198; 4/3 closest -> up-tiled to 3 rows x 4 cols
        pytest.param((182, 218), (1344, 1792), id="182x218"),
    ],
)
def test_internvl_fixed(size_hw: tuple[int, int], expected_hw: tuple[int, int]) -> None:
    perceived = perceive(parse_geometry("internvl_tiles"), *size_hw, fix=True)
    assert perceived.canvas_hw == perceived.content_hw == expected_hw


@pytest.mark.parametrize("size_hw", [(1935, 2400), (768, 768), (182, 218)])
def test_internvl_v1_is_one_tile(size_hw: tuple[int, int]) -> None:
    perceived = perceive(parse_geometry("internvl_tiles"), *size_hw)
    assert perceived.canvas_hw == perceived.content_hw == (448, 448)


def test_internvl_thumbnail_adds_one_tile() -> None:
    # W/H = 13: only 13 = 12 + 1 tiles (thumbnail) reach cols = 13
    assert internvl_tile_grid(100, 1300) == (13, 1)
    assert internvl_tile_grid(100, 1300, use_thumbnail=False) == (12, 1)


# --- mllama_tiles ----------------------------------------------------------------------------------


def test_mllama_helpers() -> None:
    # 560x560: scale min(3.5, 1.458) = 1.458 is the smallest upscale -> canvas 560x560
    assert mllama_optimal_tiled_canvas(160, 384) == (560, 560)
    # targets (560, 560); scale_w = 1.458 < scale_h = 3.5 -> (floor(160*1.458) = 233, 560)
    assert mllama_image_size_fit_to_canvas(160, 384, 560, 560) == (233, 560)


def test_mllama_v1_and_fixed() -> None:
    v1 = perceive(parse_geometry("mllama_tiles"), 160, 384)
    assert v1.canvas_hw == v1.content_hw == (233, 560)
    fixed = perceive(parse_geometry("mllama_tiles"), 160, 384, fix=True)
    assert fixed.content_hw == (233, 560)
    assert fixed.canvas_hw == (560, 560)


def test_mllama_downscale() -> None:
    # 2000x600: no canvas upscales; largest scale is 2240x560 (min(1.12, 0.933)); fit -> (1866, 560)
    assert mllama_optimal_tiled_canvas(2000, 600) == (2240, 560)
    assert mllama_image_size_fit_to_canvas(2000, 600, 2240, 560) == (1866, 560)


# --- spacing helpers -------------------------------------------------------------------------------


def test_stated_pixel_size_is_width_first() -> None:
    # pw = 0.5*200/100 = 1.0, ph = 0.25*100/50 = 0.5
    assert stated_pixel_size((0.25, 0.5), (100, 200), (50, 100)) == (1.0, 0.5)


def test_reshape_spacing() -> None:
    # (0.8*160/512, 0.7*384/512) = (0.25, 0.525)
    assert reshape_spacing((0.8, 0.7), (160, 384), 512) == pytest.approx((0.25, 0.525), abs=1e-15)


def test_reshape_then_smart_resize_is_504() -> None:
    # MedVision-V0: 160x384 reshaped to 512x512 -> 504x504
    # pw = 0.525*512/504 = 0.533, ph = 0.25*512/504 = 0.254
    spacing_hw = reshape_spacing((0.8, 0.7), (160, 384), 512)
    perceived = perceive(parse_geometry("qwen_smart_resize"), 512, 512)
    assert perceived.canvas_hw == (504, 504)
    assert _stated(spacing_hw, (512, 512), perceived.content_hw) == "0.533 x 0.254"


# --- records ---------------------------------------------------------------------------------------


def test_to_record_is_json_serialisable() -> None:
    perceived = perceive(parse_geometry("clip336_pad"), 160, 384, fix=True)
    record = perceived.to_record()
    assert record == {
        "rule": "clip336_pad",
        "params": {"size": 336},
        "canvas": [336, 336],
        "content": [140, 336],
    }
    assert json.loads(json.dumps(record)) == record
    llava = perceive(parse_geometry("llava_ov_anyres"), 160, 384).to_record()
    assert len(json.loads(json.dumps(llava))["params"]["grid_pinpoints"]) == 36


def test_perceive_fills_defaults() -> None:
    perceived = perceive(GeometrySpec("qwen_smart_resize", {"max_pixels": 1605632}), 512, 512)
    assert isinstance(perceived, PerceivedGeometry)
    assert perceived.params == {"min_pixels": 3136, "max_pixels": 1605632, "factor": 28}
    internvl = perceive(GeometrySpec("internvl_tiles", {}), 512, 512)
    assert internvl.params == {"image_size": 448, "max_num": 12, "use_thumbnail": True}


@pytest.mark.parametrize("size_hw", [(0, 10), (10, -1)])
def test_perceive_rejects_bad_size(size_hw: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="must be a positive integer"):
        perceive(parse_geometry("native"), *size_hw)


# --- parse_geometry --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule", "params"),
    [
        ("qwen_smart_resize", "qwen_smart_resize", {}),
        ("qwen_smart_resize:max_pixels=1605632", "qwen_smart_resize", {"max_pixels": 1605632}),
        (
            "qwen_smart_resize:min_pixels=3136,max_pixels=1.6e6",
            "qwen_smart_resize",
            {"min_pixels": 3136, "max_pixels": 1600000},
        ),
        ("fixed(896)", "fixed", {"size": 896}),
        ("fixed:size=896", "fixed", {"size": 896}),
        ("clip336_pad(336)", "clip336_pad", {"size": 336}),
        (
            "internvl_tiles:max_num=6,use_thumbnail=false",
            "internvl_tiles",
            {"max_num": 6, "use_thumbnail": False},
        ),
        (
            "mllama_tiles:tile_size=560,max_image_tiles=4",
            "mllama_tiles",
            {"tile_size": 560, "max_image_tiles": 4},
        ),
        ("native", "native", {}),
    ],
)
def test_parse_geometry(text: str, rule: str, params: dict) -> None:
    assert parse_geometry(text) == GeometrySpec(rule, params)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            "qwen_smart_resiz",
            r"unknown rule 'qwen_smart_resiz'; did you mean 'qwen_smart_resize'\? "
            r"Valid rules: clip336_pad, fixed, internvl_tiles, llava_ov_anyres, mllama_tiles, native, "
            r"qwen_smart_resize",
        ),
        (
            "qwen_smart_resize:max_pixel=1605632",
            r"unknown parameter 'max_pixel' for rule "
            r"'qwen_smart_resize'; did you mean 'max_pixels'\? "
            r"Valid parameters: factor, max_pixels, min_pixels",
        ),
        ("internvl_tiles:max_tiles=6", r"unknown parameter 'max_tiles'.*did you mean 'max_num'\?"),
        ("native:size=3", r"unknown parameter 'size' for rule 'native'\. Valid parameters: \(none\)"),
        ("fixed", r"rule 'fixed' needs size; write fixed:size=N or fixed\(N\)"),
        ("fixed(abc)", r"size must be a positive integer, got 'abc'"),
        ("fixed(0.5)", r"size must be a positive integer, got 0\.5"),
        ("internvl_tiles(3)", r"rule 'internvl_tiles' has no short form"),
        ("qwen_smart_resize:max_pixels", r"parameter 'max_pixels' is not of the form k=v"),
        ("qwen_smart_resize:factor=28,factor=14", r"parameter 'factor' is given twice"),
        ("internvl_tiles:use_thumbnail=maybe", r"use_thumbnail must be true or false, got 'maybe'"),
        ("llava_ov_anyres:grid_pinpoints=384x384;768", r"grid_pinpoints entry '768' is not a"),
        ("qwen_smart_resize:min_pixels=20000000", r"min_pixels \(20000000\) exceeds max_pixels \(12845056\)"),
        ("", r"empty geometry string"),
    ],
)
def test_parse_geometry_errors(text: str, pattern: str) -> None:
    with pytest.raises(SettingsError, match=pattern):
        parse_geometry(text)


def test_perceive_rejects_unknown_rule_and_param() -> None:
    with pytest.raises(SettingsError, match=r"unknown rule 'fixd'; did you mean 'fixed'\?"):
        perceive(GeometrySpec("fixd", {"size": 3}), 10, 10)
    with pytest.raises(SettingsError, match=r"unknown parameter 'sise'.*did you mean 'size'\?"):
        perceive(GeometrySpec("fixed", {"sise": 3}), 10, 10)
