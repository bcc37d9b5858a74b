"""The vllm backend against a fake `vllm` module limited to LLM(...).chat, SamplingParams and __version__.

Unit tests inject the fake into `sys.modules`; the last test writes it as a package under tmp_path and runs
the real lmms-eval CLI with it on PYTHONPATH (skipped until `medvision_adapters.chat` exists).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import textwrap
import types
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from e2e_utils import describe, read_records, run_lmms_eval, samples_files
from medvision_adapters.backends import GenRequest, GenResult
from medvision_adapters.backends.vllm import VLLMBackend, devices_for_rank
from medvision_adapters.errors import AdapterConfigError
from PIL import Image


class FakeSamplingParams:
    """Records its keyword arguments; nothing else."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class FakeLLM:
    """`LLM(**engine)` with only `chat`; answers "echo:<last text>", fails conversations that mention BOOM."""

    instances: list[FakeLLM] = []

    def __init__(self, **kwargs: Any) -> None:
        self.engine_kwargs = kwargs
        self.chat_calls: list[tuple[list, Any, dict]] = []
        FakeLLM.instances.append(self)

    def chat(self, messages: list, sampling_params: Any = None, **kwargs: Any) -> list[SimpleNamespace]:
        self.chat_calls.append((messages, sampling_params, kwargs))
        assert isinstance(messages, list) and isinstance(sampling_params, list)
        assert len(messages) == len(sampling_params)
        outputs = []
        for conversation, params in zip(messages, sampling_params):
            texts = [m["content"] if isinstance(m["content"], str) else "" for m in conversation]
            for m in conversation:
                if isinstance(m["content"], list):
                    texts += [p["text"] for p in m["content"] if p["type"] == "text"]
            if any("BOOM" in t for t in texts):
                raise ValueError("prompt too long for max_model_len")
            max_tokens = params.kwargs["max_tokens"]
            text = f"echo:{texts[-1]}"
            finish = "length" if max_tokens < 5 else "stop"
            token_ids = list(range(min(max_tokens, 7)))
            outputs.append(
                SimpleNamespace(
                    prompt_token_ids=list(range(11)),
                    outputs=[SimpleNamespace(text=text, finish_reason=finish, token_ids=token_ids)],
                )
            )
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("vllm")
    module.__version__ = "0.10.2"
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    for name in ("LOCAL_WORLD_SIZE", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    FakeLLM.instances.clear()
    return module


def grey_image(value: int = 90) -> Image.Image:
    return Image.fromarray(np.full((8, 6, 3), value, dtype=np.uint8), mode="RGB")


def request(row: int, text: str, sampling: dict[str, Any], *, system: str | None = None, image_first: bool = False):
    image = grey_image(row)
    parts = [{"type": "text", "text": text}, {"type": "image", "image": image}]
    if image_first:
        parts.reverse()
    messages = [{"role": "user", "content": parts}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": [{"type": "text", "text": system}]})
    return GenRequest(key=("medvision_demo", row), messages=messages, sampling=sampling), image


def test_engine_arguments(fake_vllm: types.ModuleType) -> None:
    backend = VLLMBackend(
        "some/checkpoint",
        {
            "tensor_parallel_size": 2,
            "dtype": "bfloat16",
            "gpu_memory_utilization": "0.8",
            "max_model_len": 8192,
            "trust_remote_code": "true",
            "mm_processor_kwargs": {"min_pixels": 3136, "max_pixels": 12845056},
            "seed": 7,
        },
    )
    assert backend.llm.engine_kwargs == {
        "model": "some/checkpoint",
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.8,
        "dtype": "bfloat16",
        "trust_remote_code": True,
        "limit_mm_per_prompt": {"image": 1},
        "mm_processor_kwargs": {"min_pixels": 3136, "max_pixels": 12845056},
        "max_model_len": 8192,
        "seed": 7,
    }
    defaults = VLLMBackend("other", {}).llm.engine_kwargs
    assert defaults["dtype"] == "auto" and defaults["gpu_memory_utilization"] == 0.9
    assert defaults["limit_mm_per_prompt"] == {"image": 1} and defaults["trust_remote_code"] is False


def test_one_chat_call_with_per_request_params(fake_vllm: types.ModuleType) -> None:
    backend = VLLMBackend("m", {})
    req_a, image_a = request(1, "first prompt", {"max_new_tokens": 64, "temperature": 0.0, "top_p": 0.95, "until": []})
    req_b, image_b = request(
        2,
        "second prompt",
        {"max_new_tokens": 3, "temperature": 0.7, "do_sample": True, "until": ["</answer>", "\n\n"], "seed": 42},
        system="You are an expert radiologist.",
    )
    req_c, image_c = request(
        3,
        "third prompt",
        {
            "max_new_tokens": 20,
            "temperature": 0.9,
            "do_sample": False,
            "until": "STOP",
            "repetition_penalty": 1.2,
            "min_new_tokens": 1,
            "num_beams": 1,
        },
        image_first=True,
    )
    results = backend.generate([req_a, req_b, req_c])

    llm = backend.llm
    assert len(llm.chat_calls) == 1, "the whole list goes to one LLM.chat call"
    conversations, params, _ = llm.chat_calls[0]
    assert [p.kwargs for p in params] == [
        {"n": 1, "temperature": 0.0, "top_p": 0.95, "max_tokens": 64, "seed": None, "stop": None},
        {"n": 1, "temperature": 0.7, "top_p": 1.0, "max_tokens": 3, "seed": 42, "stop": ["</answer>", "\n\n"]},
        {
            "n": 1,
            "temperature": 0.0,
            "top_p": 1.0,
            "max_tokens": 20,
            "seed": None,
            "stop": ["STOP"],
            "repetition_penalty": 1.2,
            "min_tokens": 1,
        },
    ]
    # Content order and system prompt as given; images as PIL parts (vLLM >= 0.10), the very objects passed in.
    assert conversations[0] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "first prompt"}, {"type": "image_pil", "image_pil": image_a}],
        }
    ]
    assert conversations[1][0] == {"role": "system", "content": "You are an expert radiologist."}
    assert conversations[1][1]["content"][0] == {"type": "text", "text": "second prompt"}
    assert conversations[1][1]["content"][1]["image_pil"] is image_b
    assert [p["type"] for p in conversations[2][0]["content"]] == ["image_pil", "text"]
    assert conversations[2][0]["content"][0]["image_pil"] is image_c

    assert results == [
        GenResult("echo:first prompt", truncated=False, prompt_tokens=11, completion_tokens=7),
        GenResult("echo:second prompt", truncated=True, prompt_tokens=11, completion_tokens=3),
        GenResult("echo:third prompt", truncated=False, prompt_tokens=11, completion_tokens=7),
    ]


def test_old_vllm_gets_png_data_urls(fake_vllm: types.ModuleType) -> None:
    import base64
    import io

    fake_vllm.__version__ = "0.9.2"
    backend = VLLMBackend("m", {})
    req, image = request(5, "p", {"max_new_tokens": 8})
    backend.generate([req])
    part = backend.llm.chat_calls[0][0][0][0]["content"][1]
    assert part["type"] == "image_url"
    url = part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(image))


def test_one_bad_request_does_not_sink_the_batch(fake_vllm: types.ModuleType) -> None:
    backend = VLLMBackend("m", {})
    requests = [request(i, "BOOM" if i == 2 else f"ok {i}", {"max_new_tokens": 16})[0] for i in range(5)]
    results = backend.generate(requests)
    assert [r.text for r in results] == ["echo:ok 0", "echo:ok 1", "", "echo:ok 3", "echo:ok 4"]
    assert results[2].error == "ValueError: prompt too long for max_model_len"
    assert all(r.error is None for i, r in enumerate(results) if i != 2)
    # 5 -> halves [0,1] + [2,3,4] -> [2] + [3,4]: four calls after the failed one, never one per request.
    assert [len(call[0]) for call in backend.llm.chat_calls] == [5, 2, 3, 1, 2]


def test_bad_message_fails_only_that_request(fake_vllm: types.ModuleType) -> None:
    backend = VLLMBackend("m", {})
    good = request(1, "fine", {})[0]
    bad = GenRequest(("t", 2), [{"role": "user", "content": [{"type": "video", "video": None}]}], {})
    results = backend.generate([good, bad])
    assert results[0].text == "echo:fine" and "unknown content part type 'video'" in results[1].error
    assert len(backend.llm.chat_calls[0][0]) == 1


def test_unsupported_settings_are_config_errors(fake_vllm: types.ModuleType) -> None:
    backend = VLLMBackend("m", {})
    with pytest.raises(AdapterConfigError, match=r"num_beams=4 \(beam search\) is not supported; use backend=hf"):
        backend.generate([request(1, "p", {"num_beams": 4})[0]])
    with pytest.raises(AdapterConfigError, match=r"'max_new_token' is not supported. Did you mean 'max_new_tokens'\?"):
        backend.generate([request(1, "p", {"max_new_token": 4})[0]])
    assert backend.llm.chat_calls == []


def test_unknown_option_lists_valid_ones(fake_vllm: types.ModuleType) -> None:
    with pytest.raises(
        AdapterConfigError, match=r"unknown option 'tensor_parallel'. Did you mean 'tensor_parallel_size'\?"
    ):
        VLLMBackend("m", {"tensor_parallel": 2})
    with pytest.raises(AdapterConfigError, match=r"gpu_memory_utilization=1.5.* above the maximum 1"):
        VLLMBackend("m", {"gpu_memory_utilization": 1.5})
    with pytest.raises(AdapterConfigError, match=r"max_vllm_version=0.1: give the full version string"):
        VLLMBackend("m", {"max_vllm_version": 0.1})


@pytest.mark.parametrize("installed", ["0.11.0", "0.10.3", "0.11.0rc1"])
def test_version_ceiling_refuses_newer_vllm(fake_vllm: types.ModuleType, installed: str) -> None:
    fake_vllm.__version__ = installed
    with pytest.raises(
        AdapterConfigError,
        match=rf"meta-llama/Llama-3.2-11B-Vision-Instruct runs only on vLLM <= 0.10.2, but vLLM {installed} is "
        r"installed .*Use backend=hf, or backend=openai with a server running vLLM 0.10.2",
    ):
        VLLMBackend("meta-llama/Llama-3.2-11B-Vision-Instruct", {"max_vllm_version": "0.10.2"})
    assert FakeLLM.instances == [], "refused before building an engine"


@pytest.mark.parametrize("installed", ["0.10.2", "0.10.2+cu128", "0.10.0"])
def test_version_ceiling_accepts_older_vllm(fake_vllm: types.ModuleType, installed: str) -> None:
    fake_vllm.__version__ = installed
    VLLMBackend("m", {"max_vllm_version": "0.10.2"})


def test_missing_vllm_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ModuleNotFoundError
    with pytest.raises(AdapterConfigError, match=r"pip install lmms-eval-medvision\[vllm\]"):
        VLLMBackend("m", {})


def test_data_parallel_processes_get_their_own_devices(fake_vllm: types.ModuleType, monkeypatch) -> None:
    assert devices_for_rank(["0", "1", "2", "3"], 1, 2) == ["2", "3"]
    assert devices_for_rank(["3"], 1, 1) == ["3"], "already pinned by the launcher"
    with pytest.raises(AdapterConfigError, match="only 3 are visible"):
        devices_for_rank(["0", "1", "2"], 1, 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    VLLMBackend("m", {"tensor_parallel_size": 2, "data_parallel_size": 2})
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "6,7"


FAKE_VLLM_PACKAGE = """
    import json, os
    from types import SimpleNamespace

    __version__ = "0.11.0"


    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs


    class LLM:
        def __init__(self, **kwargs):
            self._write({"engine": kwargs})

        def _write(self, entry):
            with open(os.environ["FAKE_VLLM_LOG"], "a") as log:
                log.write(json.dumps(entry) + "\\n")

        def chat(self, messages, sampling_params=None, **kwargs):
            shapes = [
                [m["content"] if isinstance(m["content"], str) else
                 [p["type"] if p["type"] != "image_pil" else ["image_pil", list(p["image_pil"].size)]
                  for p in m["content"]] for m in conversation]
                for conversation in messages
            ]
            self._write({"chat": shapes, "params": [p.kwargs for p in sampling_params]})
            answer = "0.250000, 0.250000, 0.750000, 0.750000"
            return [SimpleNamespace(prompt_token_ids=[1, 2, 3],
                                    outputs=[SimpleNamespace(text=answer, finish_reason="stop", token_ids=[1])])
                    for _ in messages]
"""


@pytest.mark.e2e
@pytest.mark.skipif(
    importlib.util.find_spec("medvision_adapters.chat") is None, reason="the chat adapter (model_adapters/chat.py)"
)
def test_lmms_eval_cli_with_fake_vllm(tmp_path) -> None:
    """--model medvision_qwen2_5_vl backend=vllm on medvision_demo (--limit 2) through the real CLI."""
    package = tmp_path / "fake" / "vllm"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(FAKE_VLLM_PACKAGE))
    log = tmp_path / "vllm_calls.jsonl"
    out = tmp_path / "out"
    path = os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")])
    proc = run_lmms_eval(
        [
            "--model",
            "medvision_qwen2_5_vl",
            "--model_args",
            "backend=vllm,max_model_len=4096",
            "--batch_size",
            "8",
            "--gen_kwargs",
            "max_new_tokens=77",
            "--tasks",
            "medvision_demo",
            "--limit",
            "2",
            "--output_path",
            str(out),
            "--log_samples",
        ],
        {"PYTHONPATH": path, "FAKE_VLLM_LOG": str(log)},
        timeout=600,
    )
    assert proc.returncode == 0, describe(proc)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    engines = [e["engine"] for e in entries if "engine" in e]
    chats = [e for e in entries if "chat" in e]
    assert len(engines) == 1 and engines[0]["model"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert engines[0]["mm_processor_kwargs"] == {"min_pixels": 3136, "max_pixels": 12845056}
    assert engines[0]["max_model_len"] == 4096 and engines[0]["limit_mm_per_prompt"] == {"image": 1}
    assert sum(len(c["chat"]) for c in chats) == 16 and all(len(c["chat"]) == len(c["params"]) for c in chats)
    assert max(len(c["chat"]) for c in chats) > 1, "a backend call's requests share one LLM.chat call"
    for chat in chats:
        for conversation, params in zip(chat["chat"], chat["params"]):
            # Qwen2.5-VL profile: no system prompt, user [text, image]; paper sampling with the gen_kwargs override.
            assert len(conversation) == 1 and [p if isinstance(p, str) else p[0] for p in conversation[0]] == [
                "text",
                "image_pil",
            ]
            assert params == {"n": 1, "temperature": 0.0, "top_p": 0.95, "max_tokens": 77, "seed": None, "stop": None}
    records = [rec for path in samples_files(out).values() for rec in read_records(path)]
    assert len(records) == 16
    assert all(r["response"] == "0.250000, 0.250000, 0.750000, 0.750000" and not r["generation_error"] for r in records)
