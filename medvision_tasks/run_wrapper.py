"""`medvision-eval run`: one lmms-eval child, supervised.

* The child runs in its own process group with `PR_SET_PDEATHSIG` (Linux), so it dies with the wrapper even
  after `kill -9` of the wrapper; SIGINT/SIGTERM/SIGHUP to the wrapper are forwarded to the child's group and
  the wrapper exits with the child's status.
* An exclusive lock on `<output_path>/.medvision-run.lock` for the whole run: a second `medvision-eval run`
  with the same `--output_path` refuses to start (exit 1) instead of mixing or overwriting files.
* Success is decided from this child's own results: a `*_results.json` under the output path that did not
  exist (or changed) before the child started and whose `config` names this run's model and model args.
* Each run's record is kept in `medvision_runs/<start>-<pid>.json`; `medvision_run.json` is a copy of the
  latest run's record.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from medvision_metrics.hygiene import strict

from .cli_values import flag_value

LOCK_FILE = ".medvision-run.lock"
RUNS_FOLDER = "medvision_runs"
RUN_RECORD = "medvision_run.json"
_PR_SET_PDEATHSIG = 1
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class RunLockedError(RuntimeError):
    """Another `medvision-eval run` holds the output folder."""


def take_lock(out: Path) -> int:
    """fd holding an exclusive flock on `out/.medvision-run.lock`; RunLockedError when another run holds it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = path.read_text(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunLockedError(
            f"another `medvision-eval run` is writing to {out} ({holder}); wait for it to finish or give this run "
            "another --output_path."
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
    return fd


def results_snapshot(out: Path) -> dict[Path, tuple[int, int, int]]:
    """Every `*_results.json` under `out` with (inode, mtime_ns, size)."""
    found = {}
    if out.exists():
        for path in out.rglob("*_results.json"):
            try:
                st = path.stat()
            except OSError:
                continue
            found[path] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return found


def own_results(out: Path, before: dict[Path, tuple[int, int, int]], argv: list[str]) -> list[Path]:
    """Results files this child wrote: new or changed since `before`, with this run's model and model args."""
    model, model_args = flag_value(argv, "--model"), flag_value(argv, "--model_args")
    mine = []
    for path, stamp in results_snapshot(out).items():
        if before.get(path) == stamp:
            continue
        try:
            config = json.loads(path.read_text()).get("config", {})
        except (OSError, ValueError, AttributeError):
            continue
        if model is not None and config.get("model") != model:
            continue
        if model_args is not None and str(config.get("model_args") or "") != model_args:
            continue
        mine.append(path)
    return sorted(mine)


def _die_with_parent(parent: int) -> None:
    """preexec_fn of the child: own process group; SIGTERM when the wrapper dies (even by SIGKILL)."""
    os.setpgid(0, 0)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: no parent-death signal
        pass
    if os.getppid() != parent:  # the wrapper died before prctl took effect
        os._exit(1)


def run_child(cmd: list[str]) -> int:
    """Run `cmd` supervised (see the module docstring); its exit status (128 + signal when killed)."""
    parent = os.getpid()
    child = subprocess.Popen(cmd, preexec_fn=lambda: _die_with_parent(parent))
    received: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        received.append(signum)
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        while True:
            try:
                status = child.wait()
                break
            except InterruptedError:  # pragma: no cover - wait retries on EINTR in Python 3.5+
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if status < 0:
        return 128 - status
    if received and status == 0:
        return 128 + received[0]
    return status


def write_run_record(out: Path, record: dict[str, Any], started: float) -> Path:
    """`medvision_runs/<start>-<pid>.json` (never overwritten) and `medvision_run.json` (the latest run)."""
    runs = out / RUNS_FOLDER
    runs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
    path = runs / f"{stamp}-{os.getpid()}.json"
    text = json.dumps(strict(record), indent=2, allow_nan=False)
    path.write_text(text)
    tmp = out / f".{RUN_RECORD}.{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, out / RUN_RECORD)
    return path


def print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
