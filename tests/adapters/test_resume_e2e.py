"""Crash and resume end to end: the real lmms-eval CLI (and `medvision-eval run`) against a local
OpenAI-compatible server on 127.0.0.1 that counts requests, killed at a random moment and run again.

The rerun of the same command must re-request at most the requests that were in flight (num_concurrent), and
its records and metrics must equal those of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from e2e_utils import BIN, describe, read_records, samples_files

NUM_CONCURRENT = 2
KEY_ENV = "MV_RESUME_TEST_KEY"


class CountingServer:
    """Answers every chat completion after `delay_s` with numbers derived from the request body; counts
    requests received and responses completely sent."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.received = 0
        self.sent = 0
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                with server.lock:
                    server.received += 1
                time.sleep(server.delay_s)
                digest = hashlib.sha256(raw).digest()
                a, b = sorted(v / 255 for v in digest[:2])
                c, d = sorted(v / 255 for v in digest[2:4])
                text = f"{a:.6f}, {c:.6f}, {b:.6f}, {d:.6f}"
                body = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "m",
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
                    }
                ).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                with server.lock:
                    server.sent += 1

        return Handler


def lmms_args(base_url: str, out: Path) -> list[str]:
    return [
        "--model",
        "medvision_qwen2_5_vl",
        "--model_args",
        f"backend=openai,base_url={base_url},served_name=x,num_concurrent={NUM_CONCURRENT},api_key_env={KEY_ENV}",
        "--tasks",
        "medvision_demo",
        "--output_path",
        str(out),
        "--log_samples",
    ]


def command(wrapper: bool, base_url: str, out: Path) -> list[str]:
    if wrapper:
        return [str(BIN / "medvision-eval"), "run", *lmms_args(base_url, out)]
    from medvision_tasks.taskhook import tasks_dir

    return [str(BIN / "lmms-eval"), *lmms_args(base_url, out), "--include_path", tasks_dir()]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env[KEY_ENV] = "EMPTY"
    return env


def records_and_metrics(out: Path) -> tuple[dict[str, list[dict]], dict]:
    files = samples_files(out)
    records = {task: sorted(read_records(path), key=lambda r: r["row"]) for task, path in files.items()}
    (results_path,) = sorted(out.rglob("*_results.json"))
    return records, json.loads(results_path.read_text())["results"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[int, dict, dict]:
    """An uninterrupted run: (number of requests, records, metrics)."""
    out = tmp_path_factory.mktemp("reference")
    with CountingServer() as srv:
        proc = subprocess.run(
            command(False, srv.base_url, out), capture_output=True, text=True, env=environment(), timeout=600
        )
        assert proc.returncode == 0, describe(proc)
        total = srv.received
    records, metrics = records_and_metrics(out)
    assert total == sum(len(r) for r in records.values()) > 2 * NUM_CONCURRENT + 2
    return total, records, metrics


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of this test still answers kill(0)
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def lmms_eval_children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


@pytest.mark.parametrize(
    "wrapper,sig",
    [(False, signal.SIGKILL), (False, signal.SIGTERM), (True, signal.SIGKILL), (True, signal.SIGTERM)],
    ids=["lmms-eval-kill9", "lmms-eval-sigterm", "wrapper-kill9", "wrapper-sigterm"],
)
def test_killed_run_resumes_without_rerequesting(reference, tmp_path: Path, wrapper: bool, sig: int) -> None:
    total, ref_records, ref_metrics = reference
    seed = random.randrange(1 << 30)
    stop_after = random.Random(seed).randint(1, total - NUM_CONCURRENT - 1)
    out = tmp_path / "out"
    with CountingServer(delay_s=0.05) as srv:
        proc = subprocess.Popen(
            command(wrapper, srv.base_url, out), env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 300
        while srv.sent < stop_after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        children = lmms_eval_children(proc.pid) if wrapper else []
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        for child in children:  # the wrapper's lmms-eval child must not outlive it
            end = time.monotonic() + 30
            while alive(child) and time.monotonic() < end:
                time.sleep(0.05)
            assert not alive(child), f"lmms-eval child {child} orphaned after {signal.Signals(sig).name} of wrapper"
        time.sleep(0.3)
        answered_before = srv.sent
        assert answered_before < total, f"seed {seed}: the run finished before the kill"
        received_before = srv.received
        if wrapper and sig == signal.SIGTERM:
            assert proc.returncode != 0, "a run stopped by SIGTERM must not exit 0"

        rerun = subprocess.run(
            command(wrapper, srv.base_url, out), capture_output=True, text=True, env=environment(), timeout=600
        )
        assert rerun.returncode == 0, describe(rerun)
        rerequested = srv.received - received_before
    assert rerequested <= total - answered_before + NUM_CONCURRENT, (
        f"seed {seed}: {answered_before} of {total} answered before {signal.Signals(sig).name}; "
        f"the rerun sent {rerequested}"
    )
    assert f"resumed {total - rerequested} of {total}" in rerun.stdout + rerun.stderr or total == rerequested
    records, metrics = records_and_metrics(out)
    assert records == ref_records
    assert metrics == ref_metrics


def test_use_cache_alone_does_not_resume_a_killed_run(reference, tmp_path: Path) -> None:
    """What the README says of lmms-eval's `--use_cache` (journal off): a killed run's answers are not reused;
    a finished run's are."""
    total = reference[0]
    out, cache = tmp_path / "out", tmp_path / "cache"
    env = dict(environment(), MEDVISION_JOURNAL_DIR="off")
    with CountingServer(delay_s=0.05) as srv:
        cmd = command(False, srv.base_url, out) + ["--use_cache", str(cache)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while srv.sent < total // 2 and proc.poll() is None:
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        before = srv.received
        assert 0 < srv.sent < total
        finished = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert finished.returncode == 0, describe(finished)
        assert srv.received - before == total, "--use_cache reused answers of a killed run"
        before = srv.received
        again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert again.returncode == 0, describe(again)
        assert srv.received == before, "--use_cache did not serve the rerun of a finished run"
    assert not (out / "medvision_journal").exists()
