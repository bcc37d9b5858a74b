"""Flattened rows cached on disk (docs/reference.md §1.11): gzip JSONL per (config, plan SHA-256, filters, cap)
under MEDVISION_CACHE_DIR/rows/, and `rows_for_config`, the cached entry to plan rows."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import Overrides, RowStats, iter_rows, parse_config_name, plan_inputs
from .notices import warn

ROW_CACHE_VERSION = "2"  # bump whenever flattening or the row schema changes


@dataclass
class RowCacheCounters:
    """Process-wide row-cache counters (tests and doctor read them)."""

    hits: int = 0
    misses: int = 0
    writes: int = 0


ROW_CACHE = RowCacheCounters()
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, memoised by (path, mtime, size)."""
    stat = Path(path).stat()
    memo = (str(path), stat.st_mtime_ns, stat.st_size)
    if memo not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[memo] = digest.hexdigest()
    return _DIGESTS[memo]


def row_cache_file(
    cache_dir: Path,
    root: Path,
    config: str,
    *,
    planner_version: str,
    filtering: bool,
    cap: int,
    overrides: Overrides | None = None,
) -> Path:
    """Cache file of one config's rows, keyed by every input: plan SHA-256s, filter mode, cap, ceiling, overrides."""
    cfg = parse_config_name(config)
    inputs = plan_inputs(root, cfg, planner_version)
    key = {
        "reader": ROW_CACHE_VERSION,
        "config": config,
        "root": str(Path(root).resolve()),
        "plan": file_sha256(inputs.plan_path),
        "segmentation": file_sha256(inputs.segmentation_path) if inputs.segmentation_path else None,
        "multi_cluster": file_sha256(inputs.multi_cluster_path) if inputs.multi_cluster_path else None,
        "planner_version": planner_version,
        "filtering": filtering,
        "cap": cap,
        "overrides": (overrides or {}).get(cfg.dataset),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return Path(cache_dir) / "rows" / f"{config}-{digest[:24]}.jsonl.gz"


def _read_row_cache(path: Path) -> list[dict[str, Any]] | None:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]
    except FileNotFoundError:
        return None
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        warn(f"{path}: unreadable row cache ({exc}); rebuilding it.", stacklevel=3)
        return None


def _write_row_cache(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=1) as gz:
            for row in rows:
                gz.write((json.dumps(row) + "\n").encode("utf-8"))
        os.replace(tmp, path)
        ROW_CACHE.writes += 1
    except OSError as exc:
        warn(
            f"{path}: cannot write the row cache ({exc}); set MEDVISION_CACHE_DIR to a writable folder "
            "or MEDVISION_ROW_CACHE=0.",
            stacklevel=3,
        )
        tmp.unlink(missing_ok=True)


def rows_for_config(
    root: Path,
    config: str,
    *,
    planner_version: str = "1.0.0",
    filtering: bool = True,
    cap: int = 0,
    stats: RowStats | None = None,
    overrides: Overrides | None = None,
    cache_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Filtered rows of one config in loader order with `mv_row`, truncated to `cap` rows (0 = all).

    Flattening stops once `cap` rows have passed the filters. With `cache_dir`, rows are read from and written
    to `<cache_dir>/rows/` (gzip JSONL keyed by `row_cache_file`).
    """
    path = None
    if cache_dir is not None:
        path = row_cache_file(
            cache_dir, root, config, planner_version=planner_version, filtering=filtering, cap=cap, overrides=overrides
        )
        cached = _read_row_cache(path)
        if cached is not None:
            ROW_CACHE.hits += 1
            return cached
        ROW_CACHE.misses += 1
    rows: list[dict[str, Any]] = []
    rows_iter = iter_rows(
        root, config, planner_version=planner_version, filtering=filtering, stats=stats, overrides=overrides
    )
    for row in rows_iter:
        row["mv_row"] = len(rows)
        rows.append(row)
        if cap and len(rows) >= cap:
            break
    if path is not None:
        _write_row_cache(path, rows)
    return rows
