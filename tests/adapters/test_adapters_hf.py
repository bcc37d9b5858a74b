"""The hf backend on tiny random-weight checkpoints (CPU, eager attention, float32).

Checks: left-padded batches give the same tokens as single requests, requests with different parameters
are generated separately, the processor really produces the registered geometry, a failing batch is
halved, truncation and stop strings are detected, and the remote-code InternVL path tiles as its geometry.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import numpy as np
import pytest
import torch
from medvision_adapters.backends import GenRequest, GenResult
from medvision_adapters.backends.hf import (
    HFBackend,
    cut_at_stop,
    generate_with_halving,
    hf_generate_kwargs,
    internvl_tiles,
)
from medvision_adapters.chat import Gemma3, Llama3_2_Vision, LlavaOneVision, MedVisionV0
from PIL import Image

from medvision_tasks.geometry import internvl_tile_grid, parse_geometry, perceive

ADAPTERS = {
    "qwen2_5_vl": MedVisionV0,
    "gemma3": Gemma3,
    "llava_onevision": LlavaOneVision,
    "mllama": Llama3_2_Vision,
}


def _image(h: int, w: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _request(model: Any, index: int, text: str, image: Image.Image, **gen: Any) -> GenRequest:
    sampling = model.build_sampling({"until": [], "max_new_tokens": 5, **gen})
    return GenRequest(("task", index), model.build_messages(text, [image]), sampling)


@pytest.fixture(scope="module")
def tiny_models(tiny_checkpoint) -> dict[str, Any]:
    """One adapter per family on its tiny checkpoint (the registration of the last one stays active)."""
    return {family: cls(pretrained=str(tiny_checkpoint(family))) for family, cls in ADAPTERS.items()}


@pytest.mark.parametrize("family", list(ADAPTERS))
def test_left_padded_batch_equals_single_requests(tiny_models, family):
    model = tiny_models[family]
    backend = model.backend_impl
    requests = [
        _request(model, 0, "Task: short", _image(64, 48, 1)),
        _request(model, 1, "Task: a much longer prompt about the kidney tumor size in millimeters", _image(40, 64, 2)),
    ]
    batched = backend.generate(requests)
    single = [backend.generate([r])[0] for r in requests]
    assert [r.text for r in batched] == [r.text for r in single]
    assert all(r.error is None and r.truncated for r in batched)  # random weights never stop within 5 tokens
    assert [r.completion_tokens for r in batched] == [5, 5]
    assert batched[0].prompt_tokens < batched[1].prompt_tokens
    assert backend.tokenizer.padding_side == "left"


def test_cpu_defaults_float32_and_eager(tiny_models):
    backend = tiny_models["qwen2_5_vl"].backend_impl
    assert backend.device == "cpu" and backend.model.dtype == torch.float32
    assert backend.model.config._attn_implementation == "eager"


def test_requests_with_different_parameters_are_generated_apart(tiny_models, monkeypatch):
    model = tiny_models["gemma3"]
    backend = model.backend_impl
    calls: list[dict[str, Any]] = []
    original = backend.model.generate

    def spy(**kwargs: Any) -> Any:
        calls.append({k: v for k, v in kwargs.items() if k in ("max_new_tokens", "do_sample", "stop_strings")})
        calls[-1]["batch"] = int(kwargs["input_ids"].shape[0])
        return original(**kwargs)

    monkeypatch.setattr(backend.model, "generate", spy)
    requests = [
        _request(model, 0, "a", _image(32, 32)),
        _request(model, 1, "b", _image(32, 32), max_new_tokens=3),
        _request(model, 2, "c", _image(32, 32)),
        _request(model, 3, "d", _image(32, 32), until=["\n\n"]),
    ]
    results = backend.generate(requests)
    assert calls == [
        {"max_new_tokens": 5, "do_sample": False, "batch": 2},
        {"max_new_tokens": 3, "do_sample": False, "batch": 1},
        {"max_new_tokens": 5, "do_sample": False, "stop_strings": ["\n\n"], "batch": 1},
    ]
    assert [r.completion_tokens for r in results[:3]] == [5, 3, 5]


def test_qwen_processor_produces_the_registered_geometry(tiny_checkpoint):
    for max_pixels, side in ((12845056, 504), (200000, 420)):
        model = MedVisionV0(pretrained=str(tiny_checkpoint("qwen2_5_vl")), max_pixels=max_pixels)
        perceived = perceive(parse_geometry(model.geometry), 512, 512)
        assert perceived.canvas_hw == (side, side)
        grid = model.backend_impl.processor.image_processor(images=[_image(512, 512)], return_tensors="pt")
        patch = model.backend_impl.processor.image_processor.patch_size
        assert grid["image_grid_thw"].tolist() == [[1, side // patch, side // patch]]


def test_user_limits_win_over_the_checkpoint_preprocessor_config(tiny_checkpoint, tmp_path):
    """Hub Qwen checkpoints carry `min_pixels`/`max_pixels` in preprocessor_config.json; ours must win."""
    folder = tmp_path / "qwen-hub-layout"
    shutil.copytree(tiny_checkpoint("qwen2_5_vl"), folder)
    processor_config = json.loads((folder / "processor_config.json").read_text())
    image_config = processor_config.pop("image_processor")
    image_config.update(min_pixels=3136, max_pixels=12845056)
    (folder / "processor_config.json").write_text(json.dumps(processor_config))
    (folder / "preprocessor_config.json").write_text(json.dumps(image_config))
    model = MedVisionV0(pretrained=str(folder), max_pixels=200000)
    size = model.backend_impl.processor.image_processor.size
    assert (size.shortest_edge, size.longest_edge) == (3136, 200000)
    assert model.geometry == "qwen_smart_resize:min_pixels=3136,max_pixels=200000"
    batch = model.backend_impl.processor(text=["<|image_pad|>"], images=[[_image(512, 512)]], return_tensors="pt")
    assert batch["image_grid_thw"].tolist() == [[1, 30, 30]]  # 420 x 420, as the geometry states


def test_other_families_read_their_geometry_from_the_checkpoint(tiny_models):
    gemma = tiny_models["gemma3"]
    assert gemma.geometry == "fixed:size=56"
    pixels = gemma.backend_impl.processor.image_processor(images=[_image(40, 64)], return_tensors="pt")
    assert tuple(pixels["pixel_values"].shape[-2:]) == (56, 56)
    llava = tiny_models["llava_onevision"]
    assert llava.geometry == "llava_ov_anyres:grid_pinpoints=28x28;28x56;56x28;56x56"
    assert llava.backend_impl.processor.image_processor.image_grid_pinpoints == [[28, 28], [28, 56], [56, 28], [56, 56]]
    assert tiny_models["mllama"].geometry == "mllama_tiles:tile_size=28,max_image_tiles=4"


def test_oom_batch_is_retried_in_halves(tiny_models, monkeypatch):
    backend = tiny_models["qwen2_5_vl"].backend_impl
    original = backend.model.generate
    sizes: list[int] = []

    def flaky(**kwargs: Any) -> Any:
        sizes.append(int(kwargs["input_ids"].shape[0]))
        if sizes[-1] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return original(**kwargs)

    monkeypatch.setattr(backend.model, "generate", flaky)
    model = tiny_models["qwen2_5_vl"]
    requests = [_request(model, i, f"prompt {i}", _image(32, 32, i)) for i in range(3)]
    results = backend.generate(requests)
    assert sizes == [3, 1, 2, 1, 1]
    assert all(r.error is None and r.text for r in results)


def test_one_failing_request_becomes_a_failed_result(tiny_models, monkeypatch):
    backend = tiny_models["mllama"].backend_impl
    original = backend.model.generate

    def picky(**kwargs: Any) -> Any:
        if kwargs["input_ids"].shape[1] > 60:
            raise ValueError("sequence too long for this test")
        return original(**kwargs)

    monkeypatch.setattr(backend.model, "generate", picky)
    model = tiny_models["mllama"]
    requests = [_request(model, 0, "short", _image(32, 32)), _request(model, 1, "long " * 40, _image(32, 32))]
    results = backend.generate(requests)
    assert results[0].error is None
    assert results[1] == GenResult("", error="ValueError: sequence too long for this test")


def test_halving_lets_config_errors_through():
    from medvision_adapters.errors import AdapterConfigError

    def bad(requests: list[GenRequest]) -> list[GenResult]:
        raise AdapterConfigError("num_beams=4 is not supported")

    with pytest.raises(AdapterConfigError):
        generate_with_halving(bad, [GenRequest(("t", 0), [])], "test")


def test_truncation_and_stop_detection(tiny_models):
    backend = tiny_models["qwen2_5_vl"].backend_impl
    eos = backend.tokenizer.eos_token_id
    pad = backend.tokenizer.pad_token_id
    word = backend.tokenizer("the", add_special_tokens=False)["input_ids"]
    stops = {"until": ["STOP"]}
    assert backend._result(word + [eos] + [pad] * 3, {}, 8, 10).truncated is False
    hit = backend._result(word * 4, {}, 4 * len(word), 10)
    assert hit.truncated is True and hit.completion_tokens == 4 * len(word) and hit.text == "the" * 4
    stop_ids = backend.tokenizer("x STOP y", add_special_tokens=False)["input_ids"]
    stopped = backend._result(stop_ids + [pad], stops, len(stop_ids) + 1, 10)
    assert stopped.text == "x " and stopped.truncated is False
    assert cut_at_stop("a\n\nb</answer>c", ["</answer>", "\n\n"]) == ("a", True)
    assert cut_at_stop("abc", []) == ("abc", False)


def test_generation_kwargs_mapping():
    # The paper's explicit vLLM parameters: greedy, and no checkpoint repetition penalty.
    assert hf_generate_kwargs({"temperature": 0.0, "top_p": 0.95, "max_new_tokens": 7, "until": []}) == {
        "max_new_tokens": 7,
        "do_sample": False,
        "repetition_penalty": 1.0,
    }
    assert hf_generate_kwargs({"temperature": 0.2, "repetition_penalty": 1.2, "min_new_tokens": 1, "until": ["x"]}) == {
        "do_sample": True,
        "temperature": 0.2,
        "repetition_penalty": 1.2,
        "min_new_tokens": 1,
        "stop_strings": ["x"],
    }
    # Lingshu: only max_new_tokens; the checkpoint's generation_config decides the rest.
    assert hf_generate_kwargs({"max_new_tokens": 1024, "until": []}) == {"max_new_tokens": 1024}


class _StubInternVL:
    """Records what `batch_chat` receives, as the remote-code InternVLChatModel would."""

    dtype = torch.float32

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def batch_chat(
        self,
        tokenizer: Any,
        pixel_values: Any,
        num_patches_list: list[int],
        questions: list[str],
        generation_config: dict,
    ) -> list[str]:
        self.calls.append(
            {
                "shape": tuple(pixel_values.shape),
                "counts": num_patches_list,
                "questions": questions,
                "config": generation_config,
            }
        )
        return ["<answer>3.5</answer>" for _ in questions]


def test_internvl_remote_code_path_tiles_as_its_geometry():
    backend = HFBackend.__new__(HFBackend)
    backend.torch = torch
    backend.remote_internvl = True
    backend.limits = {"max_num": 12, "image_size": 448}
    backend.input_device = "cpu"
    backend.rendered_prompts = {}
    backend.record_prompts = True
    backend.model = _StubInternVL()
    backend.tokenizer = lambda text, add_special_tokens=False: {"input_ids": text.split()}
    model_messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Task: measure"}, {"type": "image", "image": _image(182, 218)}],
        }
    ]
    request = GenRequest(("t", 0), model_messages, {"temperature": 0.0, "max_new_tokens": 64, "until": []})
    (result,) = backend.generate([request])
    call = backend.model.calls[0]
    cols, rows = internvl_tile_grid(182, 218, 448, 12, True)
    assert (cols, rows) == (4, 3)  # docs/reference.md §3.6: 182x218 -> 1344x1792
    assert call["counts"] == [cols * rows + 1] and call["shape"] == (cols * rows + 1, 3, 448, 448)
    assert call["questions"] == ["Task: measure"] and call["config"] == {
        "max_new_tokens": 64,
        "do_sample": False,
        "repetition_penalty": 1.0,
    }
    assert backend.rendered_prompts[("t", 0)] == "<image>\nTask: measure"  # chat() puts the image first
    assert result.text == "<answer>3.5</answer>" and result.truncated is False
    assert len(internvl_tiles(_image(448, 448), 1, 1, 448)) == 1


def test_flash_attention_only_when_installed(tiny_checkpoint):
    from medvision_adapters.errors import AdapterConfigError

    with pytest.raises(AdapterConfigError, match=r"flash_attention_2 needs the 'flash_attn' package"):
        HFBackend(str(tiny_checkpoint("gemma3")), {"attn_implementation": "flash_attention_2"})
    with pytest.raises(AdapterConfigError, match=r"unknown option\(s\) \['devcie'\]"):
        HFBackend(str(tiny_checkpoint("gemma3")), {"devcie": "cpu"})
