"""Checks run on the requested task names before lmms-eval loads a model (no image is read)."""

from __future__ import annotations

from pathlib import Path

from .catalogue import Subtask, build_subtasks, groups, read_catalogue
from .data import dataset_dir, find_plan, parse_config_name
from .errors import PlanError
from .settings import DEFAULT_PLANNER_VERSION, data_dir_from_env, read_env


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


def preflight(names: list[str]) -> None:
    """Raise one PlanError naming every missing data root, dataset folder or plan of the requested tasks."""
    subtasks = expand(names)
    if not subtasks:
        return
    if any(s.data_root_kind == "demo" for s in subtasks):
        from .demo import ensure_demo_root

        ensure_demo_root()
    real = [s for s in subtasks if s.data_root_kind == "real"]
    if not real:
        return
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
    if problems:
        lines = [
            f"  - {msg}\n    needed by: {', '.join(sorted(tasks)[:5])}{' ...' if len(tasks) > 5 else ''}"
            for msg, tasks in sorted(problems.items())
        ]
        raise PlanError(
            f"the requested MedVision tasks need data that is missing under {root}:\n"
            + "\n".join(lines)
            + "\nDownload the missing datasets or request only the subtasks you have (`medvision-eval doctor`)."
        )
