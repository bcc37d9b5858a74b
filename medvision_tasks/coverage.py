"""Which paper subtasks a set of run folders lacks (`medvision-eval leaderboard` prints it after the table).

Read from file names only: lmms-eval writes one `<date>_samples_<task>.jsonl` per task into
`<--output_path>/<model folder>/`, so each model folder's task names are known without opening a file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def paper_subtasks() -> list[str]:
    """Task names of the paper's main subtasks (docs/reference.md §2.2), in catalogue order."""
    from .catalogue import build_subtasks, read_catalogue

    return [s.name for s in build_subtasks(read_catalogue()) if s.set == "main"]


def missing_paper_subtasks(paths: Iterable[str | Path], show: int = 5) -> list[str]:
    """One line per model folder that holds some paper subtasks but not all of them."""
    from medvision_metrics.records import find_samples_files

    paper = paper_subtasks()
    tasks: dict[str, set[str]] = {}
    for path in paths:
        for file in find_samples_files(path):
            if "_samples_" in file.name:
                task = file.name.split("_samples_", 1)[1].removesuffix(".jsonl")
                tasks.setdefault(file.parent.name, set()).add(task)
    lines = []
    for model, present in sorted(tasks.items()):
        if not present & set(paper):
            continue
        missing = [t for t in paper if t not in present]
        if missing:
            more = f" and {len(missing) - show} more" if len(missing) > show else ""
            lines.append(
                f"{model}: {len(missing)} of {len(paper)} paper subtasks have no samples in the given folders: "
                f"{', '.join(missing[:show])}{more}"
            )
    return lines
