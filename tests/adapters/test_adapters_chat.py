"""MedVisionChatModel without weights: argument checks, backend options, messages, sampling, failures.

A fake backend records what the adapter hands it; the vllm and openai paths run the real backend classes
against a fake `vllm` module and a local HTTP server.
"""

from __future__ import annotations

import json
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from medvision_adapters import chat
from medvision_adapters.backends import GenRequest, GenResult
from medvision_adapters.chat import InternVL3, Lingshu, Llama3_2_Vision, MedGemma, MedVisionChatModel, MedVisionV0
from medvision_adapters.errors import AdapterConfigError
from medvision_adapters.profiles import PROFILES
from PIL import Image

from medvision_tasks import hooks, settings
from medvision_tasks.prompts import MEDVISION_V0_SYSTEM_PROMPT

TASK = "medvision_demo_tl_kits23_task01_axial"


class FakeBackend:
    """Answers "answer:<row>"; fails requests whose prompt contains BOOM when batched with others, and always
    when the prompt contains FAIL; answers "" for EMPTY; flags LONG as truncated."""

    name = "fake"

    def __init__(self, pretrained: str, options: dict[str, Any]) -> None:
        self.pretrained, self.options = pretrained, options
        self.calls: list[list[GenRequest]] = []

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        self.calls.append(list(requests))
        texts = [_user_text(r) for r in requests]
        if any("FAIL" in t for t in texts) or (len(requests) > 1 and any("BOOM" in t for t in texts)):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [
            GenResult("" if "EMPTY" in t else f"answer:{r.key[1]}", truncated="LONG" in t, prompt_tokens=3)
            for r, t in zip(requests, texts)
        ]


def _user_text(request: GenRequest) -> str:
    return next(p["text"] for m in request.messages if m["role"] == "user" for p in m["content"] if p["type"] == "text")


@pytest.fixture
def fake_backend(monkeypatch):
    """Replace backend construction: the adapter gets a FakeBackend holding the options it would pass."""

    def make(self, backend, pretrained, device, limits, kwargs):
        fake = FakeBackend(pretrained, self.backend_options(backend, device, limits, kwargs))
        fake.kind = backend
        return fake

    monkeypatch.setattr(MedVisionChatModel, "_make_backend", make)


def _image(h: int = 64, w: int = 48) -> Image.Image:
    return Image.fromarray(np.full((h, w, 3), 100, dtype=np.uint8))


def _requests(model: MedVisionChatModel, prompts: list[str], gen_kwargs: dict[str, Any] | None = None) -> list[Any]:
    """lmms-eval-shaped requests over one fake task split; row i has mv_row 100 + i."""
    docs = {i: {"mv_row": 100 + i} for i in range(len(prompts))}
    model.task_dict = {TASK: {"test": docs}}
    visual = lambda doc: [_image()]  # noqa: E731
    return [
        SimpleNamespace(args=(p, dict(gen_kwargs or {"until": []}), visual, i, TASK, "test"))
        for i, p in enumerate(prompts)
    ]


# ------------------------------------------------------------------------------------------- arguments
def test_unknown_model_arg_lists_the_valid_keys_for_the_backend(fake_backend):
    with pytest.raises(AdapterConfigError, match=r"unknown --model_args key 'max_pixel'\. Did you mean 'max_pixels'\?"):
        MedVisionV0(max_pixel=100)
    with pytest.raises(AdapterConfigError, match=r"Valid keys: .*attn_implementation.*max_pixels.*trust_remote_code"):
        MedVisionV0(temprature=0)


def test_model_arg_of_another_backend_is_named(fake_backend):
    with pytest.raises(
        AdapterConfigError, match=r"'tensor_parallel_size' applies to backend=vllm, not backend=hf\. Valid keys"
    ):
        MedVisionV0(tensor_parallel_size=2)
    with pytest.raises(AdapterConfigError, match=r"'base_url' applies to backend=openai, not backend=vllm"):
        MedVisionV0(backend="vllm", base_url="http://x")


def test_unknown_backend_and_backend_not_allowed_by_the_profile(fake_backend):
    with pytest.raises(
        AdapterConfigError, match=r"unknown backend 'vlm'\. Did you mean 'vllm'\? Choose one of: hf, vllm"
    ):
        MedVisionV0(backend="vlm")

    class HFOnly(MedVisionChatModel):
        profile = PROFILES["medvision_healthgpt"]

    with pytest.raises(
        AdapterConfigError, match=r"backend=openai is not available for this model; choose one of: hf\."
    ):
        HFOnly(backend="openai")


def test_missing_local_pretrained_folder(fake_backend, tmp_path):
    missing = tmp_path / "no-such-checkpoint"
    with pytest.raises(AdapterConfigError, match=r"pretrained=.*no-such-checkpoint is not an existing folder"):
        MedVisionV0(pretrained=str(missing))
    with pytest.raises(AdapterConfigError, match=r"pretrained=\./relative/ckpt is not an existing folder"):
        MedGemma(pretrained="./relative/ckpt")


def test_trust_remote_code_needed_but_not_granted(fake_backend, tmp_path):
    for backend in ("hf", "vllm"):
        with pytest.raises(
            AdapterConfigError,
            match=r"OpenGVLab/InternVL3-38B runs code from its checkpoint; add trust_remote_code=true",
        ):
            InternVL3(backend=backend)
    model = InternVL3(backend="vllm", trust_remote_code=True)
    assert model.backend_impl.options["trust_remote_code"] is True
    assert model.backend_impl.options["mm_processor_kwargs"] == {"max_dynamic_patch": 12}
    # A converted (-hf) checkpoint runs native transformers code: no remote code needed.
    native = tmp_path / "internvl3-hf"
    native.mkdir()
    (native / "config.json").write_text(json.dumps({"architectures": ["InternVLForConditionalGeneration"]}))
    assert InternVL3(pretrained=str(native)).backend_impl.options["trust_remote_code"] is False
    # The openai backend loads nothing locally.
    InternVL3(backend="openai")


def test_bad_values_are_refused_before_loading(fake_backend):
    with pytest.raises(AdapterConfigError, match=r"batch_size='auto' is not an integer"):
        MedVisionV0(batch_size="auto")
    with pytest.raises(AdapterConfigError, match=r"min_pixels=9000000 exceeds max_pixels"):
        MedVisionV0(min_pixels=9000000, max_pixels=1000000)
    with pytest.raises(AdapterConfigError, match=r"dtype='fp8'"):
        MedVisionV0(dtype="fp8")
    with pytest.raises(AdapterConfigError, match=r"geometry: geometry 'qwen_resize'"):
        MedVisionV0(geometry="qwen_resize")
    with pytest.raises(AdapterConfigError, match=r"flash_attention_2 needs the 'flash_attn' package"):
        MedVisionV0(attn_implementation="flash_attention_2")
    with pytest.raises(AdapterConfigError, match=r"greedy='maybe' is not a boolean"):
        MedVisionV0(greedy="maybe")


# ----------------------------------------------------------------------------- registration, options
def test_v0_registers_geometry_task_defaults_and_layout(fake_backend):
    model = MedVisionV0()
    active = settings.active_model()
    assert active.info["adapter"] == "medvision_v0" and active.info["pretrained"] == "YongchengYAO/MedVision-V0-7B"
    assert active.info["geometry"] == "qwen_smart_resize:min_pixels=3136,max_pixels=12845056"
    assert active.task_defaults == {"prompt_style": "cot", "parse": "answer_tag", "reshape": 512}
    generation = active.info["generation"]
    assert generation["system_prompt"] == MEDVISION_V0_SYSTEM_PROMPT and generation["image_position"] == "after_text"
    assert generation["model_key"] == "medvision_v0_7b"
    resolved = settings.resolve_settings("medvision_tl_kits23_task01_axial", {"prompt_style": "v1"})
    assert (resolved.prompt_style, resolved.parse, resolved.reshape) == ("cot", "answer_tag", 512)
    assert model.backend_impl.options["processor_limits"] == {"min_pixels": 3136, "max_pixels": 12845056}


def test_user_pixel_limits_move_processor_and_geometry_together(fake_backend):
    model = MedVisionV0(max_pixels=1605632)
    assert model.geometry == "qwen_smart_resize:min_pixels=3136,max_pixels=1605632"
    assert model.backend_impl.options["processor_limits"]["max_pixels"] == 1605632
    vllm = MedVisionV0(backend="vllm", max_pixels=1605632)
    assert vllm.backend_impl.options["mm_processor_kwargs"] == {"min_pixels": 3136, "max_pixels": 1605632}


def test_hf_options(fake_backend):
    options = MedGemma(device="cpu", dtype="float32").backend_impl.options
    assert options == {
        "family": "gemma3",
        "hf_class": "Gemma3ForConditionalGeneration",
        "device": "cpu",
        "device_map": None,
        "dtype": "float32",
        "gpu_dtype": "bfloat16",
        "attn_implementation": "eager",
        "trust_remote_code": False,
        "processor_limits": {},
    }
    assert MedGemma().geometry == "fixed:size=896"  # checkpoint not readable offline: the paper's 896


def test_vllm_and_openai_options(fake_backend):
    options = MedVisionV0(
        backend="vllm", tensor_parallel_size=2, gpu_memory_utilization=0.8, seed=7
    ).backend_impl.options
    assert options == {
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.8,
        "dtype": "bfloat16",
        "mm_processor_kwargs": {"min_pixels": 3136, "max_pixels": 12845056},
        "seed": 7,
    }
    assert Llama3_2_Vision(backend="vllm").backend_impl.options == {"dtype": "float16", "max_vllm_version": "0.10.2"}
    options = Lingshu(backend="openai", base_url="http://127.0.0.1:1/v1", num_concurrent=3).backend_impl.options
    assert options == {
        "base_url": "http://127.0.0.1:1/v1",
        "num_concurrent": 3,
        "served_name": "lingshu-medical-mllm/Lingshu-32B",
    }


def test_openai_geometry_can_be_declared(fake_backend):
    model = MedVisionV0(backend="openai", geometry="qwen_smart_resize:max_pixels=1605632")
    assert settings.active_model().info["geometry"] == "qwen_smart_resize:max_pixels=1605632"
    assert model.backend_impl.options == {"served_name": "YongchengYAO/MedVision-V0-7B"}


# ----------------------------------------------------------------------------- messages and sampling
def test_messages_follow_each_profile(fake_backend):
    image = _image()
    v0 = MedVisionV0().build_messages("PROMPT", [image])
    assert [m["role"] for m in v0] == ["system", "user"]
    assert v0[0]["content"] == [{"type": "text", "text": MEDVISION_V0_SYSTEM_PROMPT}]
    assert [p["type"] for p in v0[1]["content"]] == ["text", "image"] and v0[1]["content"][1]["image"] is image
    lingshu = Lingshu().build_messages("PROMPT", [image])
    assert [m["role"] for m in lingshu] == ["user"] and [p["type"] for p in lingshu[0]["content"]] == ["image", "text"]
    medgemma = MedGemma().build_messages("PROMPT", [image])
    assert medgemma[0]["content"][0]["text"] == "You are an expert radiologist."
    assert [p["type"] for p in medgemma[1]["content"]] == ["text", "image"]


def test_sampling_is_per_request_with_gen_kwargs_overriding(fake_backend):
    v0 = MedVisionV0()
    assert v0.build_sampling({"until": []}) == {"temperature": 0.0, "top_p": 0.95, "max_new_tokens": 4096, "until": []}
    assert v0.build_sampling({"until": "\n\n", "max_new_tokens": "8"})["until"] == ["\n\n"]
    assert v0.build_sampling({"max_new_tokens": "8"})["max_new_tokens"] == 8
    medgemma = MedGemma()
    assert medgemma.build_sampling({}) == {"do_sample": False, "max_new_tokens": 2048, "until": []}
    # A temperature from the user replaces the profile's do_sample=False.
    assert medgemma.build_sampling({"temperature": 0.7}) == {"max_new_tokens": 2048, "temperature": 0.7, "until": []}
    lingshu = Lingshu(greedy="true", seed=5)
    assert lingshu.build_sampling({}) == {
        "max_new_tokens": 1024,
        "do_sample": False,
        "temperature": 0.0,
        "until": [],
        "seed": 5,
    }
    assert lingshu.build_sampling({"image_aspect_ratio": "pad"})["max_new_tokens"] == 1024  # ignored with a warning
    with pytest.raises(AdapterConfigError, match=r"--gen_kwargs max_new_tokens='lots' is not an integer"):
        lingshu.build_sampling({"max_new_tokens": "lots"})


# ----------------------------------------------------------------------------------- request loop
def test_batches_of_batch_size_in_order_with_token_counts(fake_backend):
    model = MedVisionV0(batch_size="2")
    answers = model.generate_until(_requests(model, ["a", "b", "c"], {"until": [], "max_new_tokens": 8}))
    assert [a.text for a in answers] == ["answer:100", "answer:101", "answer:102"]
    assert answers[0].token_counts.input_tokens == 3
    calls = model.backend_impl.calls
    assert [len(c) for c in calls] == [2, 1]
    assert calls[0][0].key == (TASK, 100) and calls[0][0].sampling["max_new_tokens"] == 8


def test_failed_batch_is_halved_and_the_failing_sample_recorded(fake_backend):
    model = MedVisionV0(batch_size="4")
    prompts = ["ok", "BOOM", "FAIL", "EMPTY"]
    answers = model.generate_until(_requests(model, prompts))
    assert [a.text for a in answers] == ["answer:100", "answer:101", "", ""]
    assert [len(c) for c in model.backend_impl.calls] == [4, 2, 1, 1, 2, 1, 1]
    failed = hooks.generation_note(TASK, 102)
    assert failed["error"].startswith("RuntimeError: CUDA out of memory") and failed["truncated"] is False
    assert hooks.generation_note(TASK, 103) == {"truncated": False, "error": "empty response"}
    assert hooks.generation_note(TASK, 100) == {}


def test_truncation_and_unreadable_images_are_noted(fake_backend):
    model = MedVisionV0()
    requests = _requests(model, ["LONG", "fine"])
    requests[1].args = (requests[1].args[0], {}, lambda doc: 1 / 0, 1, TASK, "test")
    answers = model.generate_until(requests)
    assert answers[0].text == "answer:100" and answers[1].text == ""
    assert hooks.generation_note(TASK, 100) == {"truncated": True, "error": None}
    assert hooks.generation_note(TASK, 101)["error"] == "ZeroDivisionError: division by zero"


def test_bad_gen_kwargs_stop_the_run(fake_backend):
    model = MedVisionV0()
    with pytest.raises(AdapterConfigError, match="top_p='high' is not a number"):
        model.generate_until(_requests(model, ["a"], {"top_p": "high"}))


def test_dump_requests_writes_messages_and_sampling(fake_backend, tmp_path):
    dump = tmp_path / "dump.jsonl"
    model = Lingshu(dump_requests=str(dump))
    model.generate_until(_requests(model, ["hello"]))
    line = json.loads(dump.read_text().splitlines()[0])
    assert line["key"] == [TASK, 100] and line["response"] == "answer:100"
    assert line["messages"] == [
        {
            "role": "user",
            "content": [{"type": "image", "size_wh": [48, 64], "mode": "RGB"}, {"type": "text", "text": "hello"}],
        }
    ]
    assert line["sampling"] == {"max_new_tokens": 1024, "until": []}


# -------------------------------------------------------------------- real vllm and openai backends
class _FakeSamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class _FakeLLM:
    last: _FakeLLM | None = None

    def __init__(self, **kwargs: Any) -> None:
        self.engine = kwargs
        self.chats: list[tuple[list, list]] = []
        _FakeLLM.last = self

    def chat(self, messages: list, sampling_params: list, **kwargs: Any) -> list[Any]:
        self.chats.append((messages, sampling_params))
        done = SimpleNamespace(text="<answer>1.0</answer>", finish_reason="stop", token_ids=[1, 2])
        return [SimpleNamespace(prompt_token_ids=[0] * 5, outputs=[done]) for _ in messages]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.__version__ = "0.10.0"
    module.LLM = _FakeLLM
    module.SamplingParams = _FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def test_v0_on_the_vllm_backend(fake_vllm):
    model = MedVisionV0(backend="vllm", batch_size="8")
    engine = _FakeLLM.last.engine
    assert engine["model"] == "YongchengYAO/MedVision-V0-7B" and engine["dtype"] == "bfloat16"
    assert engine["mm_processor_kwargs"] == {"min_pixels": 3136, "max_pixels": 12845056}
    assert engine["limit_mm_per_prompt"] == {"image": 1}
    requests = _requests(model, ["first", "second"])
    requests[1].args = (requests[1].args[0], {"until": ["</answer>"], "max_new_tokens": 16}) + requests[1].args[2:]
    answers = model.generate_until(requests)
    assert [a.text for a in answers] == ["<answer>1.0</answer>"] * 2
    messages, params = _FakeLLM.last.chats[0]
    assert messages[0][0] == {"role": "system", "content": MEDVISION_V0_SYSTEM_PROMPT}
    assert [p["type"] for p in messages[0][1]["content"]] == ["text", "image_pil"]
    assert messages[0][1]["content"][0]["text"] == "first"
    assert params[0].kwargs["temperature"] == 0.0 and params[0].kwargs["top_p"] == 0.95
    assert params[0].kwargs["max_tokens"] == 4096 and params[0].kwargs["stop"] is None
    assert params[1].kwargs["max_tokens"] == 16 and params[1].kwargs["stop"] == ["</answer>"]


def test_llama_refuses_a_vllm_newer_than_0_10_2(fake_vllm):
    fake_vllm.__version__ = "0.11.0"
    with pytest.raises(AdapterConfigError, match=r"runs only on vLLM <= 0\.10\.2, but vLLM 0\.11\.0 is installed"):
        Llama3_2_Vision(backend="vllm")


class _ChatServer(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _ChatServer.bodies.append(body)
        reply = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "0.1, 0.2, 0.3, 0.4"}}
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_v0_on_the_openai_backend(monkeypatch):
    pytest.importorskip("openai")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("MEDVISION_TEST_KEY", "sk-test-secret")
        model = MedVisionV0(
            backend="openai",
            base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
            api_key_env="MEDVISION_TEST_KEY",
            served_name="medvision-v0",
        )
        _ChatServer.bodies.clear()
        answers = model.generate_until(_requests(model, ["Task: find the kidney"], {"until": [], "max_new_tokens": 32}))
    finally:
        server.shutdown()
    assert answers[0].text == "0.1, 0.2, 0.3, 0.4"
    body = _ChatServer.bodies[0]
    assert body["model"] == "medvision-v0" and body["max_tokens"] == 32
    assert body["temperature"] == 0.0 and body["top_p"] == 0.95
    system, user = body["messages"]
    assert system == {"role": "system", "content": MEDVISION_V0_SYSTEM_PROMPT}
    assert [p["type"] for p in user["content"]] == ["text", "image_url"]
    assert user["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_chat_module_keeps_heavy_imports_lazy():
    source = Path(chat.__file__).read_text()
    header = source.split("class MedVisionChatModel")[0]
    for name in ("import torch", "import transformers", "import vllm", "import openai"):
        assert name not in header
