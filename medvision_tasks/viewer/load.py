"""Read lmms-eval samples files for the viewer: MedVision records only, bad lines skipped and counted."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medvision_metrics.leaderboard_html import record_table_key
from medvision_metrics.reference import model_key_for

SAMPLES_PATTERN = "*_samples_*.jsonl"


class ViewerInputError(ValueError):
    """A viewer input that cannot be used at all (no such path, no samples files, nothing to show)."""


@dataclass
class Entry:
    """One sample of one run: its record, the prompt lmms-eval logged, and where it came from."""

    sid: str
    record: dict[str, Any]
    logged_prompt: str | None
    source: str
    line: int
    model: str
    table_key: str | None


@dataclass
class LoadReport:
    """What the loader kept and skipped, for the build summary."""

    entries: list[Entry] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    malformed: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())


def find_files(path: Path) -> list[Path]:
    """Samples files under a run folder (recursive, sorted), or the file itself."""
    if not path.exists():
        raise ViewerInputError(f"{path}: no such file or folder; pass a run folder (--output_path) or a samples file.")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob(SAMPLES_PATTERN) if p.is_file() and "viewer" not in p.relative_to(path).parts)
    if not files:
        raise ViewerInputError(
            f"{path}: no {SAMPLES_PATTERN} files found; run lmms-eval with --log_samples (medvision-eval run adds it)."
        )
    return files


def sample_id(record: dict[str, Any], model: str, settings_id: str | None) -> str:
    """Stable id of one model's answer to one sample: a short hash of model, task, row and settings."""
    blob = json.dumps([model, record.get("task"), record.get("row"), settings_id], separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def model_label(record: dict[str, Any]) -> str:
    """The leaderboard's model key of a record (`random`, `prior`, `qwen2_5_vl_7b`, ...)."""
    model = record.get("model") if isinstance(record.get("model"), dict) else {}
    adapter = str(model.get("adapter") or "unknown")
    try:
        return model_key_for(adapter, model.get("pretrained"))
    except Exception:  # an adapter the reference table does not know: its own name
        return adapter


def load_samples(paths: list[str | Path]) -> LoadReport:
    """Entries of every samples file under `paths`; files without `mv_record` and malformed lines are skipped."""
    report = LoadReport()
    seen: dict[str, int] = {}
    for raw in paths:
        for path in find_files(Path(raw)):
            report.files.append(str(path))
            kept = bad = 0
            with open(path, encoding="utf-8", errors="replace") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        item = json.loads(line)
                    except ValueError:
                        bad += 1
                        continue
                    record = item.get("mv_record") if isinstance(item, dict) else None
                    if not isinstance(record, dict) or "task" not in record or "family" not in record:
                        continue
                    model = model_label(record)
                    sid = sample_id(record, model, record.get("settings_id"))
                    if sid in seen:  # the same model answered the same sample twice (two runs): keep both
                        seen[sid] += 1
                        sid = f"{sid}-{seen[sid]}"
                    else:
                        seen[sid] = 0
                    logged = item.get("input") if isinstance(item.get("input"), str) else None
                    report.entries.append(
                        Entry(sid, record, logged, str(path), lineno, model, record_table_key(record))
                    )
                    kept += 1
            if bad:
                report.malformed[str(path)] = bad
                report.warnings.append(f"{path}: {bad} malformed JSONL line(s) skipped")
            if kept == 0 and bad == 0:
                report.skipped_files.append(str(path))
                report.warnings.append(
                    f"{path}: no mv_record in any line (not a MedVision samples file, or an old format); skipped"
                )
    if not report.entries:
        raise ViewerInputError(
            "no MedVision records found in " + ", ".join(str(p) for p in paths) + "; the samples files must carry "
            "mv_record (MedVision tasks run with --log_samples)."
        )
    return report
