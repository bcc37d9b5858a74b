"""The worked example of docs/adding-a-model.md, run as written through an entry point and the real CLI."""

from __future__ import annotations

import json
import os
import re
import site
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_utils import describe, read_records, samples_files

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-a-model.md"
FILE_MARK = "# file: "


def doc_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_example_is_at_most_30_lines():
    files = [b for b in doc_blocks("python") if b.startswith(FILE_MARK)]
    assert len(files) == 2
    assert sum(len([line for line in b.splitlines() if line.strip()]) for b in files) <= 30


def write_package(root: Path) -> Path:
    """Write every ``# file:`` block of the doc (python and toml) under ``root``; returns ``root``."""
    for language in ("python", "toml"):
        for block in doc_blocks(language):
            if block.startswith(FILE_MARK):
                name = block.splitlines()[0][len(FILE_MARK) :].strip()
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_text(block, encoding="utf-8")
    return root


def test_doc_package_is_complete(tmp_path):
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    package = write_package(tmp_path / "pkg")
    meta = tomllib.loads((package / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["build-system"]["build-backend"] == "setuptools.build_meta"
    assert meta["project"]["name"] and meta["project"]["version"]
    (entry,) = meta["project"]["entry-points"]["lmms_eval.models"].values()
    module, _, function = entry.partition(":")
    init = package / module / "__init__.py"
    assert init.is_file() and f"def {function}(" in init.read_text()
    assert meta["tool"]["setuptools"]["packages"] == [module]


def venv_with_this_environment(path: Path) -> Path:
    """A new virtual environment that also sees this interpreter's site-packages (no torch reinstall)."""
    # --without-pip: pip and setuptools come from this environment too (an old bundled setuptools cannot build)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, capture_output=True)
    python = path / "bin" / "python"
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    theirs = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"], check=True, capture_output=True, text=True
    ).stdout.strip()
    lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in ours)  # also runs their .pth files
    (Path(theirs) / "zz_parent_env.pth").write_text(lines)
    return python


@pytest.mark.e2e
def test_docs_example_installs_and_runs_through_its_entry_point(tmp_path, tiny_checkpoint):
    package = write_package(tmp_path / "my-medvision-models")
    python = venv_with_this_environment(tmp_path / "venv")
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
        + [str(package)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    shown = subprocess.run([str(python), "-m", "pip", "show", "my-medvision-models"], capture_output=True, text=True)
    assert "Version: 0.1.0" in shown.stdout

    dump = tmp_path / "requests.jsonl"
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [
            str(python),
            "-m",
            "lmms_eval",
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
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
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
