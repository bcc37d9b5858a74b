"""Adapter details lmms-eval and the backends rely on: lm.device, processor size forms, checkpoint sampling."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace
from typing import Any

import pytest
from medvision_adapters.backends import GenRequest
from medvision_adapters.backends.hf import pixel_limits_of
from medvision_adapters.baselines import RandomBaseline


def test_models_expose_a_device_for_lmms_eval_gathers():
    model = RandomBaseline()
    assert model.device == "cpu"  # no accelerator, no backend
    model.accelerator = SimpleNamespace(device="cuda:3")
    assert model.device == "cuda:3"


def test_pixel_limits_read_from_dict_and_sizedict():
    assert pixel_limits_of({"shortest_edge": 3136, "longest_edge": 12845056}) == (3136, 12845056)
    assert pixel_limits_of(SimpleNamespace(shortest_edge=3136, longest_edge=12845056)) == (3136, 12845056)
    assert pixel_limits_of({"height": 1}) == (None, None)


class _Params:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class _LLM:
    def __init__(self, **kwargs: Any) -> None:
        pass

    def get_default_sampling_params(self) -> SimpleNamespace:  # what vLLM builds from generation_config.json
        return SimpleNamespace(temperature=0.1, top_p=0.001, top_k=1, min_p=None, repetition_penalty=1.05)


@pytest.fixture
def backend(monkeypatch):
    module = types.ModuleType("vllm")
    module.__version__ = "0.10.2"
    module.LLM = _LLM
    module.SamplingParams = _Params
    monkeypatch.setitem(sys.modules, "vllm", module)
    from medvision_adapters.backends.vllm import VLLMBackend

    return VLLMBackend("lingshu", {})


def test_no_temperature_means_the_checkpoint_generation_config(backend):
    lingshu = backend.sampling_params({"max_new_tokens": 1024, "until": []}).kwargs
    assert lingshu["temperature"] == 0.1 and lingshu["top_k"] == 1 and lingshu["repetition_penalty"] == 1.05
    paper = backend.sampling_params({"temperature": 0.0, "top_p": 0.95, "max_new_tokens": 9, "until": []}).kwargs
    assert paper["temperature"] == 0.0 and paper["top_p"] == 0.95 and "repetition_penalty" not in paper


def test_openai_payload_leaves_temperature_to_the_server(monkeypatch):
    from medvision_adapters.backends._common import read_sampling
    from medvision_adapters.backends.openai import OpenAIBackend

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    api = OpenAIBackend("m", {"base_url": "http://127.0.0.1:9/v1"})
    request = GenRequest(("t", 0), [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], {})
    payload = api._payload(request, read_sampling("openai", {"max_new_tokens": 5}))
    assert "temperature" not in payload and payload["max_tokens"] == 5
    greedy = api._payload(request, read_sampling("openai", {"temperature": 0.0, "max_new_tokens": 5}))
    assert greedy["temperature"] == 0.0
