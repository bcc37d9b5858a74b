"""Scale-out and resume with real engines on CPU: lmms-eval's own data parallelism through
`accelerate launch --multi_gpu --num_processes 2` on CPU, and kill -9 of an hf-backend run with a tiny checkpoint.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from e2e_utils import BIN, describe, read_records, samples_files

pytestmark = pytest.mark.e2e

LIMIT = "3"


def lmms_args(model: str, model_args: str | None, out: Path) -> list[str]:
    from medvision_tasks.taskhook import tasks_dir

    args = ["--model", model]
    if model_args:
        args += ["--model_args", model_args]
    return args + [
        "--tasks",
        "medvision_demo",
        "--limit",
        LIMIT,
        "--gen_kwargs",
        "max_new_tokens=6",
        "--output_path",
        str(out),
        "--log_samples",
        "--include_path",
        tasks_dir(),
    ]


def run(cmd: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=timeout)
    assert proc.returncode == 0, describe(proc)
    return proc


def record_set(out: Path) -> list[tuple[str, int, str]]:
    found = []
    for task, path in samples_files(out).items():
        found += [(task, rec["row"], rec["response"]) for rec in read_records(path)]
    return sorted(found)


def accelerate() -> list[str]:
    # `--cpu` starts one process unless MPI is installed; `--multi_gpu` runs torch.distributed.run (gloo on CPU)
    launch = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    return launch + ["-m", "lmms_eval"]


@pytest.mark.parametrize("kind", ["baseline", "hf"])
def test_two_process_accelerate_run_equals_one_process(kind: str, tiny_checkpoint, tmp_path: Path) -> None:
    if kind == "baseline":
        model, model_args = "medvision_random", None
    else:
        model, model_args = "medvision_qwen2_5_vl", f"pretrained={tiny_checkpoint('qwen2_5_vl')},device=cpu"
    one = tmp_path / "one"
    run([str(BIN / "lmms-eval"), *lmms_args(model, model_args, one)])
    two = tmp_path / "two"
    cmd = accelerate() + lmms_args(model, model_args, two)
    launched = run(cmd)
    expected = record_set(one)
    assert len(expected) >= 8 * 2  # every demo task answered (one has only two docs)
    got = record_set(two)
    assert got == expected, "2-process records differ from 1-process records (as a set)"
    assert len({(t, r) for t, r, _ in got}) == len(got), "duplicate doc in the 2-process run"
    if kind == "hf":
        journals = sorted(p.name for p in (two / "medvision_journal").glob("*.jsonl"))
        assert [n.rsplit(".", 2)[-2] for n in journals] == ["rank0", "rank1"], describe(launched)
        again = run(cmd)  # resume per rank: every request comes from the journals
        assert "resumed" in again.stdout + again.stderr
        latest: dict[str, list[Path]] = {}
        for path in two.rglob("*_samples_*.jsonl"):
            task = path.name.split("_samples_", 1)[1]
            latest.setdefault(task, []).append(path)
        assert len(latest) == 8 and all(len(paths) == 2 for paths in latest.values())
        for paths in latest.values():
            newest = max(paths, key=lambda p: p.name)
            oldest = min(paths, key=lambda p: p.name)
            assert [r["response"] for r in read_records(newest)] == [r["response"] for r in read_records(oldest)]


def test_hf_run_killed_at_a_random_moment_resumes(tiny_checkpoint, tmp_path: Path) -> None:
    model_args = f"pretrained={tiny_checkpoint('qwen2_5_vl')}"
    ref = tmp_path / "ref"
    run([str(BIN / "lmms-eval"), *lmms_args("medvision_qwen2_5_vl", model_args, ref)])
    total = len(record_set(ref))
    out = tmp_path / "out"
    cmd = [str(BIN / "lmms-eval"), *lmms_args("medvision_qwen2_5_vl", model_args, out)]
    seed = random.randrange(1 << 30)
    stop_after = random.Random(seed).randint(1, total - 2)
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / "medvision_journal"
    deadline = time.monotonic() + 600
    done = 0
    while proc.poll() is None and time.monotonic() < deadline:
        files = list(journal.glob("*.jsonl")) if journal.is_dir() else []
        done = sum(len(p.read_bytes().split(b"\n")) - 2 for p in files)
        if done >= stop_after:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert 0 < done < total, f"seed {seed}: {done} of {total} journaled at the kill"
    again = run(cmd)
    output = again.stdout + again.stderr
    resumed = int(output.split("resumed ", 1)[1].split(" of ", 1)[0])
    assert resumed >= done, f"seed {seed}: {done} journaled before the kill, {resumed} resumed"
    assert record_set(out) == record_set(ref)
