"""Write-ahead journal of finished responses, so that a crashed or killed run resumes where it stopped.

Format: append-only JSON Lines, one file per model identity and process (rank), in
`<--output_path>/medvision_journal/<adapter>.<model fingerprint>.rank<R>.jsonl`. The first line is a header
with the model identity; every further line is one finished response (a counted failure included), written
with a single `write()` and made durable with `os.fdatasync` before the request loop issues the next request.

Why JSONL + fdatasync rather than SQLite in WAL mode: each file has exactly one writer (an exclusive `flock`;
a second process of the same model and rank gets its own file), so SQLite's locking buys nothing; a crash can
leave at most one partial last line, which is easy to detect and drop; the files are readable with `tail`
and `jq`; and one durable append costs about 0.15 ms here (benchmarks/bench_journal.py), against
SQLite's FULL-synchronous commit that fsyncs the WAL and takes its own locks for the same guarantee.

An entry is keyed by the SHA-256 of: the model fingerprint (adapter, checkpoint and its revision or file
listing, backend, generation settings, geometry, model arguments that change answers), the task, the doc id
and the request identity (exact messages or prompt, per-request sampling, SHA-256 of each image's bytes).
A changed prompt, image, model or setting therefore never reuses an old answer.

Where the journal lives: `MEDVISION_JOURNAL_DIR` when set (`off` disables it), else the `--output_path` of
the lmms-eval command line this process runs (plain `lmms-eval`, `python -m lmms_eval`, `accelerate launch
-m lmms_eval` and `medvision-eval run` all carry it in `sys.argv`), so rerunning the same command resumes.
Without either, no journal is kept.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from .errors import AdapterConfigError

JOURNAL_ENV = "MEDVISION_JOURNAL_DIR"
JOURNAL_FOLDER = "medvision_journal"
FORMAT_VERSION = 1
_OFF_WORDS = ("off", "0", "none", "false", "no")


@dataclass
class Entry:
    """One finished response as the journal stores it."""

    text: str
    error: str | None = None
    truncated: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def output_path_from_argv(argv: list[str]) -> str | None:
    """The value of `--output_path X` / `--output_path=X` in an lmms-eval command line, if any."""
    from medvision_tasks.cli_values import flag_value

    return flag_value(argv, "--output_path")


def journal_dir(environ: Mapping[str, str] | None = None, argv: list[str] | None = None) -> Path | None:
    """Folder of this run's journal, or None when no journal is kept (see the module docstring)."""
    from medvision_tasks.settings import read_env

    argv = sys.argv if argv is None else argv
    value = (read_env("journal_dir") if environ is None else environ.get(JOURNAL_ENV)) or ""
    value = value.strip()
    if value:
        return None if value.lower() in _OFF_WORDS else Path(value).expanduser()
    out = output_path_from_argv(argv)
    return Path(out).expanduser() / JOURNAL_FOLDER if out else None


def check_writable(folder: Path) -> None:
    """Create `folder` and prove a file can be written there; AdapterConfigError naming it otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise AdapterConfigError(
            f"cannot write the run journal in {folder} ({exc.strerror or exc}); give a writable --output_path "
            f"(or set {JOURNAL_ENV}=DIR, or {JOURNAL_ENV}=off to run without resume)."
        ) from None


def canonical(value: Any) -> bytes:
    """Stable JSON bytes (sorted keys, no spaces; non-JSON values by their str)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def image_digest(image: Any) -> dict[str, Any]:
    """SHA-256 of a PIL image's pixel bytes, with its mode and size."""
    return {
        "sha256": hashlib.sha256(image.tobytes()).hexdigest(),
        "mode": image.mode,
        "size": list(image.size),
    }


def fingerprint(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def checkpoint_identity(pretrained: str | None) -> dict[str, Any]:
    """What identifies a checkpoint's weights: for a local folder its file names, sizes and mtimes; for a
    hub id the snapshot commit found in the local cache (offline), when there is one."""
    if not pretrained:
        return {}
    path = Path(str(pretrained)).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        return {"files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]}
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(str(pretrained), "config.json")
    except Exception:
        return {}
    if isinstance(found, str):
        parts = Path(found).parts
        if "snapshots" in parts:
            return {"revision": parts[parts.index("snapshots") + 1]}
    return {}


class Journal:
    """The entries of one model identity found in a folder, plus this process's append-only file."""

    def __init__(self, folder: Path, identity: dict[str, Any], adapter: str, rank: int = 0) -> None:
        self.folder = folder
        self.identity = identity
        self.model_fp = fingerprint(identity)
        self.adapter = adapter
        self.rank = rank
        self.entries: dict[str, Entry] = {}
        self._fd: int | None = None
        check_writable(folder)
        self._load()

    # ------------------------------------------------------------------------------------------ read
    def _load(self) -> None:
        other: list[str] = []
        for path in sorted(self.folder.glob("*.jsonl")):
            try:
                data = path.read_bytes()
            except OSError as exc:
                logger.warning(f"journal: cannot read {path} ({exc.strerror}); its entries are not used.")
                continue
            lines = data.split(b"\n")
            header = _parse(lines[0]) if lines else None
            if not isinstance(header, dict) or header.get("journal") != FORMAT_VERSION:
                logger.warning(f"journal: {path} has no journal header; ignored.")
                continue
            if header.get("model_fp") != self.model_fp:
                other.append(path.name)
                continue
            self._read_entries(path, lines)
        if other:
            logger.info(
                f"journal: {len(other)} journal(s) of another model or settings in {self.folder} ignored "
                f"({', '.join(other[:3])}{', ...' if len(other) > 3 else ''})."
            )

    def _read_entries(self, path: Path, lines: list[bytes]) -> None:
        tail = lines[-1]
        if tail.strip():
            logger.warning(f"journal: {path}: incomplete last line (the run was cut off while writing); dropped.")
        bad = 0
        for raw in lines[1:-1]:
            if not raw.strip():
                continue
            item = _parse(raw)
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("k"), str)
                or not isinstance(item.get("text"), str)
            ):
                bad += 1
                continue
            self.entries[item["k"]] = Entry(
                text=item["text"],
                error=item.get("error"),
                truncated=bool(item.get("truncated")),
                prompt_tokens=item.get("pt"),
                completion_tokens=item.get("ct"),
            )
        if bad:
            logger.warning(f"journal: {path}: {bad} corrupt line(s) skipped; those samples run again.")

    def key(self, task: str, doc_id: Any, request: Any) -> str:
        """Entry key of one request: model fingerprint, task, doc id and the request identity."""
        return fingerprint([self.model_fp, task, doc_id, request])

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    # ----------------------------------------------------------------------------------------- write
    def _open(self) -> int:
        stem = f"{_safe(self.adapter)}.{self.model_fp[:16]}.rank{self.rank}"
        for suffix in ("", f".pid{os.getpid()}"):
            path = self.folder / f"{stem}{suffix}.jsonl"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # another live process of this model and rank writes there
                os.close(fd)
                continue
            self._repair(fd, path)
            self.path = path
            return fd
        raise AdapterConfigError(f"journal: could not open a journal file in {self.folder}.")

    def _repair(self, fd: int, path: Path) -> None:
        """Write the header into a new file; cut a torn last line so the next entry starts a fresh line."""
        size = os.fstat(fd).st_size
        if size == 0:
            header = {"journal": FORMAT_VERSION, "model_fp": self.model_fp, "model": self.identity}
            os.write(fd, canonical(header) + b"\n")
            os.fsync(fd)
            _fsync_dir(self.folder)
            return
        data = path.read_bytes()
        if not data.endswith(b"\n"):
            os.ftruncate(fd, data.rfind(b"\n") + 1)
            os.fsync(fd)

    def write(self, key: str, entry: Entry, task: str, doc_id: Any) -> None:
        """Append one entry and make it durable (fdatasync) before returning."""
        if self._fd is None:
            self._fd = self._open()
        line = {
            "k": key,
            "task": task,
            "doc": doc_id,
            "text": entry.text,
            "error": entry.error,
            "truncated": entry.truncated,
            "pt": entry.prompt_tokens,
            "ct": entry.completion_tokens,
        }
        os.write(self._fd, canonical(line) + b"\n")
        os.fdatasync(self._fd)
        self.entries[key] = entry

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def model_identity(
    adapter: str,
    pretrained: str | None,
    backend: str | None,
    geometry: str,
    generation: Any,
    model_args: Mapping[str, Any],
    ignored_args: Iterable[str],
) -> dict[str, Any]:
    """The model part of the fingerprint; `ignored_args` are model arguments that cannot change an answer."""
    skip = set(ignored_args)
    return {
        "adapter": adapter,
        "pretrained": pretrained,
        "checkpoint": checkpoint_identity(pretrained),
        "backend": backend,
        "geometry": geometry,
        "generation": generation,
        "model_args": {k: v for k, v in sorted(model_args.items()) if k not in skip},
    }
