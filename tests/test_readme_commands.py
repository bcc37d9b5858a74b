"""The README's shell blocks run as written (issue 14).

A fresh `git clone` of this repository gets the demo runs of `make demo` (the Makefile's own recipe, read from
the Makefile, run with this test session's environment instead of a new .venv), then every ```bash block of
README.md that is not marked `<!-- readme-test: skip (why) -->` runs in it with `bash -euo pipefail`. A block
needing a GPU, real data or an install must carry that marker, so a new block is tested unless someone says
why it cannot be.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = re.compile(r"<!-- readme-test: skip \((.+)\) -->")
FENCE = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
VENV = Path(sys.executable).parent.parent


# commands that would install into, or rebuild, the environment the clone borrows: such a block must be marked
INSTALLING = re.compile(r"(^|[\s;&|(])(make|pip|python -m pip|python -m venv|uv)\s")


def unmarked_installers(blocks: list[tuple[str, str | None]]) -> list[str]:
    """Unmarked blocks that would install packages or run make (never run: the clone shares this .venv)."""
    return [body for body, reason in blocks if reason is None and INSTALLING.search(body)]


def readme_blocks(text: str) -> list[tuple[str, str | None]]:
    """(body, skip reason or None) of every ```bash block, the reason from the comment line just above it."""
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        reason = SKIP.fullmatch(before[-1].strip()) if before else None
        blocks.append((match.group(1), reason.group(1) if reason else None))
    return blocks


def makefile_recipe(makefile: str, target: str) -> str:
    """The recipe of ``target`` as a shell script, with the Makefile's variables for an existing environment."""
    lines = makefile.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        body.append(line[1:].lstrip("@"))
    script = "\n".join(body).replace("\\\n", " ")
    values = {"$(OFFLINE)": "", "$(BIN)/": "", "$(DEMO_OUT)": "demo_runs"}
    for name, value in values.items():
        script = script.replace(name, value)
    assert "$(" not in script, f"unknown Makefile variable in the {target} recipe: {script}"
    return script


def test_blocks_are_found_and_marked() -> None:
    blocks = readme_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    run = [body for body, reason in blocks if reason is None]
    assert len(blocks) >= 7 and run
    assert any("leaderboard demo_runs/ --allow-demo" in body for body in run)
    assert not unmarked_installers(blocks)
    assert unmarked_installers([("make demo\n", None), ("ls; pip install x\n", None), ("make demo\n", "why")]) == [
        "make demo\n",
        "ls; pip install x\n",
    ]
    assert readme_blocks("x\n<!-- readme-test: skip (GPU) -->\n```bash\nnvidia-smi\n```\n```bash\nls\n```\n") == [
        ("nvidia-smi\n", "GPU"),
        ("ls\n", None),
    ]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to clone")
    base = tmp_path_factory.mktemp("readme")
    target = base / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    if unmarked_installers(readme_blocks((target / "README.md").read_text(encoding="utf-8"))):
        pytest.fail("README blocks that install or run make must carry <!-- readme-test: skip (why) -->")
    (target / ".venv").symlink_to(VENV, target_is_directory=True)  # what `make install` would have made
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        MEDVISION_CACHE_DIR=str(base / "cache"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MPLBACKEND="Agg",
    )
    demo = makefile_recipe((target / "Makefile").read_text(encoding="utf-8"), "demo")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", demo], cwd=target, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"make demo recipe failed:\n{demo}\n{proc.stderr[-4000:]}"
    assert "Table 2 - detection" in proc.stdout
    return target, env


def test_readme_blocks_run_in_a_fresh_clone(clone: tuple[Path, dict[str, str]]) -> None:
    target, env = clone
    blocks = readme_blocks((target / "README.md").read_text(encoding="utf-8"))
    assert not unmarked_installers(blocks), "mark these blocks <!-- readme-test: skip (why) -->"
    for body, reason in blocks:
        if reason is not None:
            continue
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", body], cwd=target, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, f"README block failed (exit {proc.returncode}):\n{body}\n{proc.stderr[-4000:]}"

    # what the After-the-demo block promises
    rows = list(csv.reader(io.StringIO((target / "demo_tables.csv").read_text(encoding="utf-8"))))
    assert rows[0][0] == "table" and {len(row) for row in rows} == {len(rows[0])}
    assert (target / "demo_fig3.png").stat().st_size > 0
    assert json.loads((target / "demo_leaderboard" / "leaderboard.json").read_text())["detection"]
    assert (target / "demo_kits_tl.jsonl").read_text().count("\n") > 0
    assert (target / "demo_requests" / "requests.jsonl").is_file()


def test_leaderboard_refuses_demo_records_without_the_flag(clone: tuple[Path, dict[str, str]]) -> None:
    target, env = clone
    proc = subprocess.run(
        ["medvision-eval", "leaderboard", "demo_runs/"], cwd=target, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "--allow-demo" in proc.stderr
