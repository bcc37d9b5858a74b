"""Where a subtask's rows came from, for every per-sample record (`row_source`).

`row_source(...)` describes one config's rows: `kind` "plan" (flattened from the plan file) or "arrow" (an
official Arrow build, docs/reference.md §1.6, with its path remap); the plan file (relative to the data root),
its annotation version and SHA-256 (the plans also feed the mv_* fields of Arrow rows); and `overrides`: null
when MEDVISION_PLAN_OVERRIDES is unset or names nothing for this config, else the SHA-256 of the override text,
the fields it sets for this config's plan task (`fields`) and those whose value it actually changed
(`changed`). The leaderboard (`medvision_metrics.hygiene.check_row_sources`) requires the records of one
config to agree on everything here except machine-specific paths.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .arrow_rows import RowSources
from .data import apply_overrides, parse_config_name, plan_inputs, plan_task, read_plan
from .row_cache import file_sha256
from .settings import read_env


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def overrides_digest() -> str | None:
    """SHA-256 of the MEDVISION_PLAN_OVERRIDES text (the file's bytes, or the inline JSON), or None."""
    text = read_env("plan_overrides")
    if not text or not text.strip():
        return None
    raw = text.strip()
    data = raw.encode() if raw.startswith("{") else Path(raw).expanduser().read_bytes()
    return hashlib.sha256(data).hexdigest()


def _override_fields(root: Path, config: str, planner_version: str, sources: RowSources) -> dict[str, Any] | None:
    cfg = parse_config_name(config)
    inputs = plan_inputs(root, cfg, planner_version)
    kinds = [(cfg.plan_kind, inputs.plan_path)]
    if cfg.family == "detection" and inputs.segmentation_path is not None:
        kinds.append(("segmentation", inputs.segmentation_path))
    fields: list[str] = []
    changed: list[str] = []
    for kind, path in kinds:
        wanted = sources.overrides.get(cfg.dataset, {}).get(kind, {}).get(cfg.task_id) or {}
        if not wanted:
            continue
        task = plan_task(read_plan(path), cfg.task_id, str(path))
        after = apply_overrides(task, sources.overrides, cfg.dataset, kind)
        prefix = "" if kind == cfg.plan_kind else f"{kind}."
        for name in sorted(wanted):
            fields.append(prefix + name)
            if json.dumps(task.get(name), sort_keys=True) != json.dumps(after.get(name), sort_keys=True):
                changed.append(prefix + name)
    if not fields:
        return None
    return {"sha256": overrides_digest(), "fields": fields, "changed": changed}


def row_source(
    root: Path, config: str, planner_version: str, sources: RowSources, arrow: Path | None
) -> dict[str, Any]:
    """The provenance of one config's rows (see the module doc)."""
    cfg = parse_config_name(config)
    inputs = plan_inputs(root, cfg, planner_version)
    out: dict[str, Any] = {
        "kind": "arrow" if arrow is not None else "plan",
        "plan_file": _relative(inputs.plan_path, root),
        "plan_version": inputs.version,
        "plan_sha256": file_sha256(inputs.plan_path),
    }
    if arrow is not None:
        out["arrow_path"] = str(arrow)
        out["arrow_name"] = Path(arrow).name
        out["path_remap"] = [list(pair) for pair in sources.path_remap]
    out["overrides"] = _override_fields(root, config, planner_version, sources)
    return out
