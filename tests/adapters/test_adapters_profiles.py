"""The profile table (docs/reference.md §7.3): one frozen row per --model name, resolvable through the entry point."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
import textwrap

import pytest
from medvision_adapters import manifests
from medvision_adapters.errors import AdapterConfigError
from medvision_adapters.profiles import PROFILES, Checkpoint, ModelProfile, get_profile, model_key_for

from medvision_tasks.geometry import parse_geometry
from medvision_tasks.prompts import MEDVISION_V0_SYSTEM_PROMPT

PAPER_MODELS = {
    # --model: (paper model keys, default pretrained, backends)
    "medvision_v0": (["medvision_v0_7b"], "YongchengYAO/MedVision-V0-7B", ("hf", "vllm", "openai")),
    "medvision_lingshu": (["lingshu_32b"], "lingshu-medical-mllm/Lingshu-32B", ("hf", "vllm", "openai")),
    "medvision_medgemma": (["medgemma_4b", "medgemma_27b"], "google/medgemma-4b-it", ("hf", "vllm", "openai")),
    "medvision_qwen2_5_vl": (
        ["qwen2_5_vl_7b", "qwen2_5_vl_32b"],
        "Qwen/Qwen2.5-VL-7B-Instruct",
        ("hf", "vllm", "openai"),
    ),
    "medvision_llava_onevision": (
        ["llava_onevision_72b"],
        "llava-hf/llava-onevision-qwen2-72b-ov-hf",
        ("hf", "vllm", "openai"),
    ),
    "medvision_internvl3": (["internvl3_38b"], "OpenGVLab/InternVL3-38B", ("hf", "vllm", "openai")),
    "medvision_gemma3": (["gemma3_27b"], "google/gemma-3-27b-it", ("hf", "vllm", "openai")),
    "medvision_llama3_2_vision": (
        ["llama3_2_vision_11b"],
        "meta-llama/Llama-3.2-11B-Vision-Instruct",
        ("hf", "vllm", "openai"),
    ),
    "medvision_healthgpt": (["healthgpt_l14"], "microsoft/phi-4", ("hf",)),
    "medvision_meddr": (["meddr_40b"], "Sunanhe/MedDr_0401", ("hf",)),
    "medvision_huatuogpt_vision": (["huatuogpt_vision_34b"], "FreedomIntelligence/HuatuoGPT-Vision-34B", ("hf",)),
}
CHAT_MODELS = [name for name, profile in PROFILES.items() if profile.family != "third_party"]


def test_thirteen_paper_models_in_eleven_profiles():
    assert set(PROFILES) == set(PAPER_MODELS)
    keys = [c.model_key for p in PROFILES.values() for c in p.checkpoints]
    assert len(keys) == 13 and len(set(keys)) == 13
    for name, (model_keys, default, backends) in PAPER_MODELS.items():
        profile = PROFILES[name]
        assert [c.model_key for c in profile.checkpoints] == model_keys
        assert profile.default_pretrained == default
        assert profile.backends == backends
        parse_geometry(profile.default_geometry)


@pytest.mark.parametrize("name", CHAT_MODELS)
def test_chat_profiles_resolve_through_the_manifest(name):
    module_name, _, class_name = manifests.ADAPTER_CLASSES[name].rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    assert cls.profile is PROFILES[name]
    parse_geometry(PROFILES[name].default_geometry)


def test_generation_defaults_and_layouts_follow_the_paper():
    v0 = PROFILES["medvision_v0"]
    assert v0.system_prompt == MEDVISION_V0_SYSTEM_PROMPT and v0.image_position == "after_text"
    assert dict(v0.generation) == {"temperature": 0.0, "top_p": 0.95, "max_new_tokens": 4096}
    assert dict(v0.task_defaults) == {"prompt_style": "cot", "parse": "answer_tag", "reshape": 512}
    lingshu = PROFILES["medvision_lingshu"]
    assert lingshu.image_position == "before_text" and lingshu.system_prompt is None
    # the rest comes from generation_config (docs/reference.md §9 Q7)
    assert dict(lingshu.generation) == {"max_new_tokens": 1024}
    medgemma = PROFILES["medvision_medgemma"]
    assert medgemma.system_prompt == "You are an expert radiologist."
    assert dict(medgemma.generation) == {"do_sample": False, "max_new_tokens": 2048}
    for name in ("medvision_qwen2_5_vl", "medvision_llava_onevision", "medvision_internvl3", "medvision_gemma3"):
        assert dict(PROFILES[name].generation) == {"temperature": 0.0, "top_p": 0.95, "max_new_tokens": 1024}
    assert PROFILES["medvision_llama3_2_vision"].max_vllm_version == "0.10.2"
    assert PROFILES["medvision_internvl3"].trust_remote_code is True
    huatuo = PROFILES["medvision_huatuogpt_vision"]
    assert huatuo.generation["do_sample"] is True and huatuo.generation["repetition_penalty"] == 1.2
    assert huatuo.third_party is not None and huatuo.third_party.env_var == "MEDVISION_HUATUO_DIR"
    rules = {name: p.geometry_rule for name, p in PROFILES.items()}
    assert rules["medvision_llava_onevision"] == "llava_ov_anyres" and rules["medvision_meddr"] == "fixed"
    assert rules["medvision_healthgpt"] == rules["medvision_huatuogpt_vision"] == "clip336_pad"


def test_profiles_are_frozen():
    profile = PROFILES["medvision_v0"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.name = "medvision_other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        profile.generation["max_new_tokens"] = 1  # type: ignore[index]


def test_model_keys_from_adapter_and_pretrained():
    assert model_key_for("medvision_medgemma", None) == "medgemma_4b"
    assert model_key_for("medvision_medgemma", "google/medgemma-27b-it") == "medgemma_27b"
    assert model_key_for("medvision_qwen2_5_vl", "Qwen/Qwen2.5-VL-32B-Instruct/") == "qwen2_5_vl_32b"
    assert model_key_for("medvision_qwen2_5_vl", "/tmp/my-finetune") is None
    assert model_key_for("medvision_random", None) is None


def test_unknown_profile_name_gets_the_closest():
    with pytest.raises(AdapterConfigError, match=r"'medvision_qwen25_vl'\. Did you mean 'medvision_qwen2_5_vl'"):
        get_profile("medvision_qwen25_vl")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "qwen_custom"}, r"start with 'medvision_'"),
        ({"backends": ("hf", "tgi")}, r"subset of \('hf', 'vllm', 'openai'\)"),
        ({"image_position": "middle"}, r"image_position must be one of"),
        ({"generation": {"max_tokens": 5}}, r"unknown generation keys \['max_tokens'\]"),
        ({"geometry_rule": "smart_resize"}, r"geometry rule 'smart_resize' is not one of"),
        ({"processor_args": ("max_num",)}, r"processor_args \['max_num'\] need a default"),
        ({"dtype": "fp16"}, r"dtype 'fp16' is not one of"),
        ({"checkpoints": ()}, r"at least one checkpoint"),
    ],
)
def test_bad_profile_rows_are_refused(change, message):
    base = PROFILES["medvision_qwen2_5_vl"]
    with pytest.raises(AdapterConfigError, match=message):
        dataclasses.replace(base, **change)


def test_a_new_row_is_plain_data():
    row = dataclasses.replace(
        PROFILES["medvision_qwen2_5_vl"],
        name="medvision_sft_demo",
        checkpoints=(Checkpoint("sft_demo", "org/sft"),),
        image_position="before_text",
    )
    assert isinstance(row, ModelProfile) and row.default_pretrained == "org/sft"
    assert row.model_key(None) == "sft_demo"


def test_profiles_import_without_torch_or_transformers():
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "transformers", "vllm", "openai", "lmms_eval"):
                    raise ImportError("blocked " + name)
        sys.meta_path.insert(0, Block())
        import medvision_adapters.manifests, medvision_adapters.profiles
        print(len(medvision_adapters.profiles.PROFILES))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "11"


def test_model_key_table_is_generated_from_the_profiles() -> None:
    # metrics/data/model_keys.json is what the leaderboard reads; it must equal what the profiles say.
    from medvision_adapters.profiles import main
    from medvision_metrics.reference import model_key_for as leaderboard_key

    assert main(["--check"]) == 0
    for profile in PROFILES.values():
        for checkpoint in profile.checkpoints:
            for name in (checkpoint.pretrained,) + checkpoint.aliases:
                assert leaderboard_key(profile.name, name) == checkpoint.model_key
                assert model_key_for(profile.name, name) == checkpoint.model_key


def test_every_adapter_class_takes_its_facts_from_its_profile() -> None:
    import importlib

    for name, profile in PROFILES.items():
        module_name, _, class_name = profile.class_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        assert cls.profile is profile and manifests.ADAPTER_CLASSES[name] == profile.class_path
        if profile.third_party is not None:
            assert cls.adapter_name == name and cls.repo is profile.third_party
            assert cls.default_pretrained == profile.default_pretrained and cls.default_dtype == profile.dtype
            assert cls.generation_defaults == dict(profile.generation)
            assert cls.geometry == profile.third_party.geometry
            assert profile.third_party.adapter == name and profile.third_party.model == profile.paper_name
