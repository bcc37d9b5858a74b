"""The worked example of docs/adding-a-model.md, run as written through an entry point and the real CLI."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from e2e_utils import describe, read_records, run_lmms_eval, samples_files

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-a-model.md"
FILE_MARK = "# file: "


def doc_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_example_is_at_most_30_lines():
    files = [b for b in doc_blocks("python") if b.startswith(FILE_MARK)]
    assert len(files) == 2
    assert sum(len([line for line in b.splitlines() if line.strip()]) for b in files) <= 30


@pytest.mark.e2e
def test_docs_example_runs_through_an_entry_point(tmp_path, tiny_checkpoint):
    site = tmp_path / "site"
    for block in doc_blocks("python"):
        if block.startswith(FILE_MARK):
            name = block.splitlines()[0][len(FILE_MARK) :].strip()
            (site / name).parent.mkdir(parents=True, exist_ok=True)
            (site / name).write_text(block, encoding="utf-8")
    (toml,) = doc_blocks("toml")
    group, entry = toml.strip().splitlines()
    assert group == '[project.entry-points."lmms_eval.models"]'
    dist = site / "my_medvision_models-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-medvision-models\nVersion: 0.1\n")
    name, _, target = entry.partition("=")
    target = target.strip().strip('"')
    (dist / "entry_points.txt").write_text(f"[lmms_eval.models]\n{name.strip()} = {target}\n")

    dump = tmp_path / "requests.jsonl"
    out = tmp_path / "results"
    proc = run_lmms_eval(
        [
            "--model",
            "medvision_sft_qwen25vl",
            "--model_args",
            f"pretrained={tiny_checkpoint('qwen2_5_vl')},dump_requests={dump}",
            "--tasks",
            "medvision_demo_tl_kits23_task01_axial",
            "--limit",
            "2",
            "--gen_kwargs",
            "max_new_tokens=4",
            "--output_path",
            str(out),
            "--log_samples",
        ],
        {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)},
    )
    assert proc.returncode == 0 and "Failed to load model entry-point" not in proc.stdout, describe(proc)
    (path,) = samples_files(out).values()
    records = read_records(path)
    assert [r["model"]["adapter"] for r in records] == ["medvision_sft_qwen25vl"] * 2
    assert records[0]["model"]["generation"]["image_position"] == "before_text"
    assert records[0]["geometry"]["rule_string"] == "qwen_smart_resize:min_pixels=3136,max_pixels=12845056"
    sent = [json.loads(line) for line in dump.read_text().splitlines()]
    assert [m["role"] for m in sent[0]["messages"]] == ["user"]
    assert [p["type"] for p in sent[0]["messages"][0]["content"]] == ["image", "text"]
    assert "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Task:\n" in sent[0]["rendered_prompt"]
