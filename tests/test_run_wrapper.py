"""`medvision-eval run` with other runs on the same --output_path: the lock, and success from its own child only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from e2e_utils import BIN, describe

from medvision_tasks import run_wrapper

pytestmark = pytest.mark.e2e


def wrapper_cmd(out: Path, *extra: str) -> list[str]:
    return [
        str(BIN / "medvision-eval"),
        "run",
        "--model",
        "medvision_random",
        *extra,
        "--tasks",
        "medvision_demo",
        "--limit",
        "2",
        "--output_path",
        str(out),
    ]


def test_own_results_ignores_files_of_other_runs(tmp_path: Path) -> None:
    out = tmp_path / "o"
    (out / "m").mkdir(parents=True)
    old = out / "m" / "2020_results.json"
    old.write_text(json.dumps({"config": {"model": "medvision_random", "model_args": ""}}))
    before = run_wrapper.results_snapshot(out)
    other = out / "m" / "2021_results.json"
    other.write_text(json.dumps({"config": {"model": "medvision_prior", "model_args": ""}}))
    mine = out / "m" / "2022_results.json"
    mine.write_text(json.dumps({"config": {"model": "medvision_random", "model_args": "seed=3"}}))
    argv = ["--model", "medvision_random", "--model_args", "seed=3"]
    assert run_wrapper.own_results(out, before, argv) == [mine]


def test_second_concurrent_run_refuses_and_no_file_is_lost(tmp_path: Path) -> None:
    out = tmp_path / "o"
    first = subprocess.Popen(wrapper_cmd(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = out / run_wrapper.LOCK_FILE
    deadline = time.monotonic() + 120
    while not (lock.is_file() and f"pid {first.pid}" in lock.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(wrapper_cmd(out, "--model_args", "seed=7"), capture_output=True, text=True, timeout=600)
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-3000:]
    assert second.returncode == 1 and "another `medvision-eval run` is writing to" in second.stderr, describe(second)
    third = subprocess.run(wrapper_cmd(out, "--model_args", "seed=7"), capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, describe(third)
    results = sorted(out.rglob("*_results.json"))
    assert len(results) == 2, results  # both runs' aggregate results kept
    runs = sorted((out / run_wrapper.RUNS_FOLDER).glob("*.json"))
    assert len(runs) == 2 and {json.loads(p.read_text())["exit_status"] for p in runs} == {0}


def test_failing_run_exits_1_whatever_another_process_writes(tmp_path: Path) -> None:
    donor = tmp_path / "donor"
    ok = subprocess.run(wrapper_cmd(donor, "--model_args", "seed=1"), capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, describe(ok)
    (source,) = donor.rglob("*_results.json")
    out = tmp_path / "o"
    stop = threading.Event()

    def other_run_writes() -> None:  # fresh results of the same --model appear while the failing run runs
        n = 0
        while not stop.is_set():
            target = out / source.parent.name / f"2099{n:04d}_results.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
            n += 1
            time.sleep(0.1)

    writer = threading.Thread(target=other_run_writes, daemon=True)
    writer.start()
    try:
        env = dict(os.environ)
        failing = subprocess.run(
            wrapper_cmd(out, "--model_args", "seed=not-a-number"), capture_output=True, text=True, env=env, timeout=600
        )
    finally:
        stop.set()
        writer.join()
    assert failing.returncode == 1, describe(failing)
    record = json.loads((out / run_wrapper.RUN_RECORD).read_text())
    assert record["exit_status"] == 1 and record["results_files"] == []
