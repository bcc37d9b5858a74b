"""Checks run on the requested task names before lmms-eval loads a model (no image is read).

With MEDVISION_SKIP_MISSING=1 the subtasks whose dataset folder or plan is absent are skipped instead of
failing; `record_skipped` writes them (with the reason) for the results.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .catalogue import Subtask, build_subtasks, groups, read_catalogue
from .data import dataset_dir, find_plan, parse_config_name
from .errors import PlanError
from .settings import DEFAULT_PLANNER_VERSION, data_dir_from_env, read_env, skip_missing

SKIPPED_FILE = "medvision_skipped.json"
# subtask -> reason, for the subtasks the last preflight skipped (MEDVISION_SKIP_MISSING=1)
_SKIPPED: dict[str, str] = {}


def expand(names: list[str]) -> list[Subtask]:
    """Catalogue subtasks named directly or through (nested) MedVision groups."""
    subtasks = build_subtasks(read_catalogue())
    by_name = {s.name: s for s in subtasks}
    group_members = {g: members for g, (members, _) in groups(subtasks).items()}
    out: dict[str, Subtask] = {}
    stack = [n for n in names if n.startswith("medvision")]
    while stack:
        name = stack.pop()
        if name in by_name:
            out[name] = by_name[name]
        elif name in group_members:
            stack.extend(group_members[name])
    return list(out.values())


def preflight(names: list[str], *, skip: bool | None = None) -> list[str]:
    """Check the data of the requested MedVision tasks; return the subtasks skipped for missing data.

    Raises one PlanError naming every missing data root, dataset folder or plan, unless `skip` (default:
    MEDVISION_SKIP_MISSING) is on, in which case the subtasks of absent datasets are skipped with a warning.
    A missing or unset data root, or nothing left to run, is an error either way.
    """
    _SKIPPED.clear()  # the record describes the latest run
    subtasks = expand(names)
    if not subtasks:
        return []
    skip = skip_missing() if skip is None else skip
    if any(s.data_root_kind == "demo" for s in subtasks):
        from .demo import ensure_demo_root

        ensure_demo_root()
    real = [s for s in subtasks if s.data_root_kind == "real"]
    if not real:
        return []
    value = data_dir_from_env()
    if not value:
        raise PlanError(
            f"MEDVISION_DATA_DIR is not set but {len(real)} requested MedVision task(s) read a data root; point it "
            "at the folder that holds Datasets/ (see `medvision-eval doctor`), or run --tasks medvision_demo."
        )
    root = Path(value).expanduser()
    version = read_env("planner_version") or DEFAULT_PLANNER_VERSION
    problems: dict[str, list[str]] = {}
    for s in real:
        cfg = parse_config_name(s.config)
        try:
            find_plan(dataset_dir(root, cfg.dataset), cfg.plan_kind, version)
        except PlanError as exc:
            if not root.is_dir() or not (root / "Datasets").is_dir():
                raise
            problems.setdefault(f"{cfg.dataset}: {exc}", []).append(s.name)
    if not problems:
        return []
    lines = [
        f"  - {msg}\n    needed by: {', '.join(sorted(tasks)[:5])}{' ...' if len(tasks) > 5 else ''}"
        for msg, tasks in sorted(problems.items())
    ]
    if not skip:
        raise PlanError(
            f"the requested MedVision tasks need data that is missing under {root}:\n"
            + "\n".join(lines)
            + "\nDownload the missing datasets, request only the subtasks you have (`medvision-eval doctor`), or "
            "set MEDVISION_SKIP_MISSING=1 to skip them."
        )
    skipped = {task: msg for msg, tasks in problems.items() for task in tasks}
    if len(skipped) == len(real) and len(real) == len(subtasks):
        raise PlanError(
            f"MEDVISION_SKIP_MISSING=1 would skip every requested MedVision subtask; no dataset they need is under "
            f"{root}:\n" + "\n".join(lines)
        )
    _SKIPPED.update(skipped)
    message = (
        f"medvision: MEDVISION_SKIP_MISSING=1: skipping {len(skipped)} subtask(s) whose data is missing under "
        f"{root} (recorded as medvision_skipped in the results):\n" + "\n".join(lines)
    )
    # lmms_eval.utils silences every Python warning, so this goes through logging (stderr by default).
    logging.getLogger(__name__).warning(message)
    return sorted(skipped)


def skipped_subtasks() -> dict[str, str]:
    """Subtask -> reason for every subtask the latest preflight skipped."""
    return dict(_SKIPPED)


def record_skipped(output_path: Any = None) -> dict[str, Any]:
    """The skip record (written to `<output_path>/medvision_skipped.json` when a folder is given)."""
    record = {
        "switch": "MEDVISION_SKIP_MISSING=1",
        "data_root": data_dir_from_env(),
        "skipped": [{"task": task, "reason": reason} for task, reason in sorted(_SKIPPED.items())],
    }
    if output_path:
        out = Path(str(output_path)).expanduser()
        if out.suffix != ".json":
            out.mkdir(parents=True, exist_ok=True)
            (out / SKIPPED_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record
