"""The real lmms-eval CLI on medvision_demo with the hf backend and tiny random-weight checkpoints.

Each run writes its samples files plus a `dump_requests` file holding, per request, the neutral messages and
the exact text the checkpoint's chat template produced. The tests check that both agree with the prompt
lmms-eval logged, and that system prompt and image placement are the ones the profile prescribes.
"""

from __future__ import annotations

import json

import pytest
from e2e_utils import describe, read_records, run_lmms_eval, samples_files
from medvision_adapters.profiles import PROFILES

from medvision_tasks.prompts import MEDVISION_V0_SYSTEM_PROMPT

pytestmark = pytest.mark.e2e

# --model -> (tiny family, expected chat-template text around the logged prompt `{p}`)
RUNS = {
    "medvision_v0": (
        "qwen2_5_vl",
        f"<|im_start|>system\n{MEDVISION_V0_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n"
        "{p}<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n",
    ),
    "medvision_lingshu": (
        "qwen2_5_vl",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>{p}<|im_end|>\n<|im_start|>assistant\n",
    ),
    "medvision_medgemma": (
        "gemma3",
        "<bos><start_of_turn>user\nYou are an expert radiologist.\n\n{p}<start_of_image><end_of_turn>\n"
        "<start_of_turn>model\n",
    ),
    "medvision_llava_onevision": (
        "llava_onevision",
        "<|im_start|>user\n<image>\n{p}<|im_end|>\n<|im_start|>assistant\n",
    ),
    "medvision_llama3_2_vision": (
        "mllama",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{p}<|image|><|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
}


QWEN_GEOMETRY = "qwen_smart_resize:min_pixels=3136,max_pixels=12845056"
V1 = ("v1", "last_k", None)
PAPER_SAMPLING = {"temperature": 0.0, "top_p": 0.95, "max_new_tokens": 8, "until": []}
EXPECTED = {
    "medvision_v0": {
        "settings": ("cot", "answer_tag", 512),
        "sampling": PAPER_SAMPLING,
        "geometry": QWEN_GEOMETRY,
        "canvas": [504, 504],
    },
    # Lingshu: only max_new_tokens; the rest from the checkpoint's generation_config (docs/reference.md §9 Q7).
    "medvision_lingshu": {"settings": V1, "sampling": {"max_new_tokens": 8, "until": []}, "geometry": QWEN_GEOMETRY},
    "medvision_medgemma": {
        "settings": V1,
        "sampling": {"do_sample": False, "max_new_tokens": 8, "until": []},
        "geometry": "fixed:size=56",  # from the tiny checkpoint's processor config
    },
    "medvision_llava_onevision": {
        "settings": V1,
        "sampling": PAPER_SAMPLING,
        "geometry": "llava_ov_anyres:grid_pinpoints=28x28;28x56;56x28;56x56",
    },
    "medvision_llama3_2_vision": {
        "settings": V1,
        "sampling": PAPER_SAMPLING,
        "geometry": "mllama_tiles:tile_size=28,max_image_tiles=4",
    },
}


@pytest.fixture(scope="module", params=list(RUNS))
def cli_run(request, tiny_checkpoint, tmp_path_factory) -> dict:
    """One `lmms-eval --model NAME` run on the demo with --limit 2 and 8 new tokens."""
    name = request.param
    family, template = RUNS[name]
    out = tmp_path_factory.mktemp(name)
    dump = out / "requests.jsonl"
    proc = run_lmms_eval(
        [
            "--model",
            name,
            "--model_args",
            f"pretrained={tiny_checkpoint(family)},dump_requests={dump}",
            "--batch_size",
            "2",
            "--tasks",
            "medvision_demo",
            "--limit",
            "2",
            "--gen_kwargs",
            "max_new_tokens=8",
            "--output_path",
            str(out / "results"),
            "--log_samples",
        ]
    )
    # lmms-eval exits 0 after some errors: the dump file is the real sign that the model ran.
    assert proc.returncode == 0 and dump.is_file(), describe(proc)
    dumped = {}
    for line in dump.read_text().splitlines():
        item = json.loads(line)
        dumped[tuple(item["key"])] = item
    files = samples_files(out / "results")
    samples = [json.loads(line) for path in files.values() for line in path.read_text().splitlines() if line]
    return {"name": name, "template": template, "files": files, "samples": samples, "dumped": dumped}


def test_every_demo_task_answered(cli_run):
    assert len(cli_run["files"]) == 8
    assert len(cli_run["samples"]) == 16 == len(cli_run["dumped"])
    for path in cli_run["files"].values():
        for record in read_records(path):
            assert record["model"]["adapter"] == cli_run["name"] and record["model"]["backend"] == "hf"
            assert record["generation_error"] in (None, "empty response")
    assert any(s["mv_record"]["truncated"] for s in cli_run["samples"])  # random weights run to 8 tokens


def test_backend_received_the_profile_layout(cli_run):
    profile = PROFILES[cli_run["name"]]
    for sample in cli_run["samples"]:
        record = sample["mv_record"]
        sent = cli_run["dumped"][(record["task"], record["row"])]
        prompt = sample["input"]
        roles = [m["role"] for m in sent["messages"]]
        assert roles == (["system", "user"] if profile.system_prompt else ["user"])
        if profile.system_prompt:
            assert sent["messages"][0]["content"] == [{"type": "text", "text": profile.system_prompt}]
        user = sent["messages"][-1]["content"]
        kinds = ["image", "text"] if profile.image_position == "before_text" else ["text", "image"]
        assert [p["type"] for p in user] == kinds
        assert next(p["text"] for p in user if p["type"] == "text") == prompt
        assert sent["rendered_prompt"] == cli_run["template"].replace("{p}", prompt)
        generation = record["model"]["generation"]
        assert generation["system_prompt"] == profile.system_prompt
        assert generation["image_position"] == profile.image_position


def test_records_carry_the_profile_settings_and_geometry(cli_run):
    expected = EXPECTED[cli_run["name"]]
    for sample in cli_run["samples"]:
        record = sample["mv_record"]
        settings = record["settings"]
        assert (settings["prompt_style"], settings["parse"], settings["reshape"]) == expected["settings"]
        sent = cli_run["dumped"][(record["task"], record["row"])]
        assert sent["sampling"] == expected["sampling"]
        if record["family"] == "detection":
            continue
        assert record["geometry"]["rule_string"] == expected["geometry"]
        if "canvas" in expected:  # MedVision-V0: sent at 512x512, seen and stated at 504x504
            assert sent["messages"][1]["content"][1]["size_wh"] == [512, 512]
            assert record["geometry"]["canvas"] == expected["canvas"] == record["geometry"]["content"]
            assert "The image size is 504 pixels (width) x 504 pixels (height)." in sample["input"]
