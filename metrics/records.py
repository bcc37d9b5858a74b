"""Per-sample records in: finding samples files, decoding their ``mv_record`` lines fast, validating each record
(docs/reference.md §5.7, §6.1)."""

from __future__ import annotations

import contextlib
import gc
import json
import re
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import RecordError
from .scoring import FAMILY_K

SCHEMA_VERSION = 1
SAMPLES_GLOB = "*_samples_medvision_*.jsonl"
SOURCE_FIELD = "_source"
DISTRIBUTION = "lmms-eval-medvision"
MV_RECORD_KEY = '"mv_record": '
STRING_FIELDS: tuple[str, ...] = ("task", "config", "dataset")
REQUIRED_FIELDS: tuple[str, ...] = (
    "schema", "task", "family", "config", "row", "dataset", "slice_dim", "label_name", "modality",
    "region_label", "region_modality", "metric_type", "metric_key", "target", "response", "excluded",
    "multicluster_listed", "settings", "settings_id", "model", "data_root_kind", "multi_instance",
)  # fmt: skip
REQUIRED_SET = frozenset(REQUIRED_FIELDS)


def find_samples_files(path: str | Path) -> list[Path]:
    """Samples files under ``path`` (recursive, sorted), or ``[path]`` when it is a file.

    Raises:
        RecordError: the path does not exist, or a folder holds no ``*_samples_medvision_*.jsonl``.
    """
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob(SAMPLES_GLOB) if p.is_file())
    if not files:
        raise RecordError(
            f"{path}: no {SAMPLES_GLOB} files found; rerun lmms-eval with --log_samples "
            "(medvision-eval run adds it) and pass its --output_path folder"
        )
    return files


def installed_plugin_version() -> str:
    """Version of the installed ``lmms-eval-medvision`` distribution (``"unknown"`` when not installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def _version_tuple(text: Any) -> tuple[int, ...] | None:
    parts = re.findall(r"\d+", str(text).split("+", 1)[0])[:3]
    return tuple(int(p) for p in parts) if parts else None


def validate_record(record: Any, where: str) -> None:
    """Check one ``mv_record`` against schema 1: presence of the fields the leaderboard reads, ``schema``,
    ``family``, the types of ``task``/``config``/``dataset``/``row``/``response``, ``target`` length,
    ``settings`` and ``model.adapter``.

    Raises:
        RecordError: naming ``where`` (file:line), the field, what was found and the way out.
    """
    if not isinstance(record, dict):
        raise RecordError(f"{where}: mv_record is {type(record).__name__}, expected an object")
    if "schema" not in record:
        raise RecordError(f"{where}: mv_record has no field 'schema'")
    if record["schema"] != SCHEMA_VERSION:
        writer = record.get("plugin_version")
        written = f" (written by plugin {writer})" if writer else ""
        raise RecordError(
            f"{where}: field 'schema' is {record['schema']!r}{written}, this leaderboard "
            f"(plugin {installed_plugin_version()}) reads schema {SCHEMA_VERSION}; "
            "summarise these records with the plugin version that wrote them"
        )
    if not record.keys() >= REQUIRED_SET:
        missing = [name for name in REQUIRED_FIELDS if name not in record]
        raise RecordError(
            f"{where}: mv_record lacks field {missing[0]!r} (missing: {', '.join(missing)}); the file was "
            "not written by this plugin's schema-1 hooks or was edited; rerun the task"
        )
    family = record["family"]
    if family not in FAMILY_K:
        raise RecordError(f"{where}: field 'family' is {family!r}, expected one of {', '.join(FAMILY_K)}")
    for name in STRING_FIELDS:
        if not isinstance(record[name], str) or not record[name]:
            raise RecordError(f"{where}: field {name!r} must be a non-empty string, got {record[name]!r}")
    target = record["target"]
    k = FAMILY_K[family]
    if (
        not isinstance(target, list)
        or len(target) != k
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in target)
    ):
        raise RecordError(
            f"{where}: field 'target' must be a list of {k} numbers for {family}, got {target!r}"
        )
    if record["response"] is not None and not isinstance(record["response"], str):
        raise RecordError(f"{where}: field 'response' must be a string, got {type(record['response']).__name__}")
    model = record["model"]
    if not isinstance(model, dict) or not isinstance(model.get("adapter"), str) or not model["adapter"]:
        raise RecordError(f"{where}: field 'model.adapter' is missing, got model={model!r}")
    if not isinstance(record["settings"], dict):
        raise RecordError(f"{where}: field 'settings' must be an object, got {record['settings']!r}")
    if not isinstance(record["row"], int) or isinstance(record["row"], bool):
        raise RecordError(f"{where}: field 'row' must be an integer, got {record['row']!r}")


_DECODER = json.JSONDecoder()


def _decode_mv_record(line: str, where: str) -> Any:
    """The ``mv_record`` of one samples line.

    Lines written by ``json.dumps`` (lmms-eval's samples files) hold the key once at the top level; then only
    that object is decoded, which skips the prompt and metric entries. Any other shape is decoded whole.
    """
    text = line.rstrip()
    start = text.find(MV_RECORD_KEY)
    if start > 0 and text[0] == "{" and text[-1] == "}" and text.find(MV_RECORD_KEY, start + 1) < 0:
        try:
            record, end = _DECODER.raw_decode(text, start + len(MV_RECORD_KEY))
        except json.JSONDecodeError:
            pass
        else:
            if text[end : end + 1] in (",", "}"):
                return record
    try:
        sample = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(sample, dict) or "mv_record" not in sample:
        raise RecordError(
            f"{where}: no field 'mv_record'; only samples files written by MedVision tasks of this "
            "plugin carry per-sample records"
        )
    return sample["mv_record"]


def _read_samples_file(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise RecordError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            record = _decode_mv_record(line, where)
            validate_record(record, where)
            record[SOURCE_FIELD] = where  # a freshly decoded object: annotate in place
            records.append(record)
    return records


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (restored afterwards). Records are acyclic JSON trees freed by
    reference counting; tens of thousands of them otherwise trigger repeated full collections (~40% of the
    run time at 30,000 records)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_records(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read every ``mv_record`` under ``paths`` (folders searched recursively, or single samples files).

    Each returned record is a copy with an extra key ``"_source"`` (``"<file>:<line>"``). Files are read in
    the order of ``paths`` and, within a folder, in sorted order; a file reached twice is read once.

    Raises:
        RecordError: a missing path, a folder without samples files, a line that is not JSON, has no
            ``mv_record``, lacks a required field or has another ``schema``. Nothing partial is returned.
    """
    records: list[dict[str, Any]] = []
    seen: set[Path] = set()
    paths = list(paths)
    with _cyclic_gc_paused():
        for path in paths:
            for file in find_samples_files(path):
                resolved = file.resolve()
                if resolved in seen:
                    continue
                seen.add(resolved)
                records.extend(_read_samples_file(file))
    if not records:
        raise RecordError(f"no mv_record lines in {', '.join(str(p) for p in paths)}")
    return records
