"""Cost of the per-sample journal, and time to resume a fully journaled demo run (not run in CI).

    python benchmarks/bench_journal.py [--n 500] [--repeats 5] [--folder DIR] [--resume]

Journal overhead per sample, each figure the median over `--repeats` runs of `--n` samples:

* key: the request identity of one chat request (SHA-256 of a 512x512 RGB slice's pixels + messages + sampling);
* write: one durable append (`write` + `fdatasync`) in `--folder` (default: a temporary folder under the
  current directory, i.e. the disk a run's --output_path would use);
* total: key + write per sample;
* and, for comparison, a bare 300-byte append + `fdatasync` in the same folder (the disk's share of `write`).

`--resume`: runs `lmms-eval --model medvision_qwen2_5_vl` (backend=openai against a local stand-in server
that answers at once) on `medvision_demo` to completion, then runs the same command again and reports the
wall time of both and how many requests the second one sent (0 expected: all resumed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from medvision_adapters.chat import identity_messages
from medvision_adapters.journal import Entry, Journal
from PIL import Image


def slice_image(index: int, size: int = 512) -> Image.Image:
    rng = np.random.default_rng(index)
    return Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).convert("RGB")


def overhead(n: int, repeats: int, folder: Path) -> dict[str, float]:
    images = [slice_image(i) for i in range(8)]
    sampling = {"max_new_tokens": 4096, "temperature": 0.0, "top_p": 0.95, "until": []}
    keys_ms, writes_ms = [], []
    for repeat in range(repeats):
        where = folder / f"run{repeat}"
        journal = Journal(where, {"adapter": "bench", "repeat": repeat}, "bench")
        t0 = time.perf_counter()
        keys = []
        for i in range(n):
            messages = [
                {
                    "role": "user",
                    "content": [{"type": "image", "image": images[i % 8]}, {"type": "text", "text": f"p{i}"}],
                }
            ]
            keys.append(journal.key("task", i, {"messages": identity_messages(messages), "sampling": sampling}))
        t1 = time.perf_counter()
        for i, key in enumerate(keys):
            journal.write(key, Entry(f"0.{i:06d}, 0.2, 0.7, 0.8", prompt_tokens=900, completion_tokens=30), "task", i)
        t2 = time.perf_counter()
        journal.close()
        keys_ms.append((t1 - t0) / n * 1000)
        writes_ms.append((t2 - t1) / n * 1000)
    key, write = statistics.median(keys_ms), statistics.median(writes_ms)
    return {"key_ms": key, "write_ms": write, "total_ms": key + write, "disk_ms": disk_sync_ms(folder, n)}


def disk_sync_ms(folder: Path, n: int) -> float:
    """Median time of a bare 300-byte append + fdatasync in `folder`: the disk's part of a durable write."""
    fd = os.open(folder / "bare", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 299 + b"\n")
            os.fdatasync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
    return statistics.median(times)


class InstantServer:
    def __init__(self) -> None:
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                server.requests += 1
                body = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "m",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "0.2, 0.2, 0.6, 0.6"},
                                "finish_reason": "stop",
                            }
                        ],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def resume(folder: Path) -> None:
    srv = InstantServer()
    url = f"http://127.0.0.1:{srv.httpd.server_address[1]}/v1"
    lmms_eval = Path(sys.executable).with_name("lmms-eval")
    cmd = [
        str(lmms_eval), "--model", "medvision_qwen2_5_vl",
        "--model_args", f"backend=openai,base_url={url},served_name=x,num_concurrent=8",
        "--tasks", "medvision_demo", "--output_path", str(folder / "out"), "--log_samples",
    ]  # fmt: skip
    env = dict(os.environ, OPENAI_API_KEY="EMPTY")
    for label in ("first run", "resumed rerun"):
        before = srv.requests
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-2000:])
            raise SystemExit(1)
        print(f"{label}: {wall:.1f} s wall, {srv.requests - before} request(s) sent")
    srv.httpd.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.folder or Path.cwd()))
    try:
        figures = overhead(args.n, args.repeats, folder)
        print(
            f"journal overhead per sample (median of {args.repeats} x {args.n}): key {figures['key_ms']:.3f} ms "
            f"(512x512 RGB SHA-256), durable write {figures['write_ms']:.3f} ms, total {figures['total_ms']:.3f} ms "
            f"in {folder}; a bare append+fdatasync on this disk now takes {figures['disk_ms']:.3f} ms"
        )
        if args.resume:
            resume(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
