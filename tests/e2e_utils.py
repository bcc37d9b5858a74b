"""Helpers for end-to-end tests that run the real lmms-eval CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run_lmms_eval(
    args: list[str], env_extra: dict[str, str] | None = None, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run `lmms-eval ARGS` with the test session's environment (offline, private cache)."""
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([str(BIN / "lmms-eval"), *args], capture_output=True, text=True, env=env, timeout=timeout)


def run_medvision_eval(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([str(BIN / "medvision-eval"), *args], capture_output=True, text=True, env=env, timeout=600)


def samples_files(out_dir: Path) -> dict[str, Path]:
    """task name -> samples JSONL written by lmms-eval under out_dir."""
    found = {}
    for path in out_dir.rglob("*_samples_*.jsonl"):
        task = path.name.split("_samples_", 1)[1].removesuffix(".jsonl")
        found[task] = path
    return found


def results_json(out_dir: Path) -> dict:
    paths = sorted(out_dir.rglob("*_results.json"))
    assert paths, f"no results file under {out_dir}"
    return json.loads(paths[-1].read_text())


def read_records(path: Path) -> list[dict]:
    return [json.loads(line)["mv_record"] for line in path.read_text().splitlines() if line.strip()]


def describe(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
