"""`medvision-eval export-requests`: prompts and rendered PNGs for models run outside lmms-eval
(docs/reference.md §7.6).

Output folder layout::

    DIR/requests.jsonl          one line per row: task, config, row, prompt, image, geometry, ...
    DIR/images/<task>/<row>.png the slice exactly as `doc_to_visual` renders it (RGB, lossless)
    DIR/export_manifest.json    declared geometry, per-task settings and row counts, the scoring command

The prompts state the pixel size for the declared geometry (`--geometry`, the same rule strings as
MEDVISION_GEOMETRY), so that the external model's processor and the prompt agree. Generate with
`docs/runners/run_external.py` in the model's own environment, then score the responses with
`--model medvision_replay --model_args path=responses.jsonl,geometry=<the same rule>`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medvision_metrics.options import closest_match

REQUESTS_FILE = "requests.jsonl"
IMAGES_DIR = "images"
MANIFEST_FILE = "export_manifest.json"
GEOMETRY_ENV = "MEDVISION_GEOMETRY"


class ExportRequestsError(ValueError):
    """A requested task name is unknown or the declared geometry cannot be applied."""


@dataclass
class ExportSummary:
    """What one export wrote: the folder, the number of requests and rows per task."""

    out_dir: Path
    requests: int = 0
    rows_by_task: dict[str, int] = field(default_factory=dict)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the `export-requests` subcommand."""
    parser.add_argument("--tasks", nargs="+", required=True, help="MedVision subtasks or groups, e.g. medvision_tl")
    parser.add_argument(
        "--geometry",
        required=True,
        help="image geometry the external model sees (MEDVISION_GEOMETRY syntax), e.g. clip336_pad or 'fixed(448)'",
    )
    parser.add_argument("--out", required=True, help="output folder (requests.jsonl, images/, export_manifest.json)")
    parser.add_argument("--limit", type=int, help="keep the first N rows of each subtask (as lmms-eval --limit N)")


def run(args: argparse.Namespace) -> int:
    """CLI entry: export, print a summary; unknown task names exit 2."""
    tasks = [name for item in args.tasks for name in item.split(",") if name]  # also the lmms-eval a,b form
    try:
        summary = export_requests(tasks, args.geometry, Path(args.out), limit=args.limit)
    except ExportRequestsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{summary.requests} requests of {len(summary.rows_by_task)} subtask(s) -> {summary.out_dir / REQUESTS_FILE}",
        file=sys.stderr,
    )
    return 0


def resolve_subtasks(names: list[str]) -> list[Any]:
    """Catalogue subtasks named directly or through groups; unknown names raise with the closest match."""
    from .catalogue import build_subtasks, groups, read_catalogue
    from .preflight import expand

    subtasks = build_subtasks(read_catalogue())
    known = [s.name for s in subtasks] + list(groups(subtasks))
    for name in names:
        if name not in known:
            close = closest_match(name, known)
            hint = f"; did you mean {close!r}?" if close else ""
            raise ExportRequestsError(
                f"--tasks {name!r} is not a MedVision subtask or group{hint} (`medvision-eval list`)"
            )
    order = {s.name: i for i, s in enumerate(subtasks)}
    return sorted(expand(names), key=lambda s: order[s.name])


def stub_for(subtask: Any) -> dict[str, Any]:
    """The one-line stub the subtask's YAML reads (same keys as the generated stub files)."""
    variant = {"set": subtask.set, "prompt_style": subtask.prompt_style, "reshape": subtask.reshape}
    if getattr(subtask, "spacing_k", None) is not None:  # spacing variants (docs/spacing-test.md)
        variant.update(spacing_k=subtask.spacing_k, base_task=subtask.base_task)
    return {
        "mv_task": subtask.name,
        "mv_config": subtask.config,
        "mv_family": subtask.family,
        "mv_variant": variant,
        "mv_data_root_kind": subtask.data_root_kind,
    }


def warn_if_overridden(rule: str) -> None:
    """The explicit --geometry wins over MEDVISION_GEOMETRY; say so when they differ."""
    from .settings import read_env

    previous = read_env("geometry")
    if previous is not None and previous != rule:
        print(f"warning: {GEOMETRY_ENV}={previous!r} is overridden by --geometry {rule!r}.", file=sys.stderr)


def image_rel_path(task: str, row: int) -> str:
    """Path of a row's PNG relative to the export folder."""
    return f"{IMAGES_DIR}/{task}/{row:06d}.png"


def export_requests(tasks: list[str], geometry: str, out_dir: Path, limit: int | None = None) -> ExportSummary:
    """Write requests.jsonl, the PNGs and the manifest for `tasks` under the declared `geometry`."""
    from . import __version__
    from .geometry import parse_geometry
    from .hooks import build_rows, prompt_and_geometry, render_image, settings_for
    from .preflight import preflight
    from .settings import resolve_settings

    rule = geometry.strip()
    parse_geometry(rule)
    if limit is not None and limit < 1:
        raise ExportRequestsError(f"--limit {limit}: expected a positive number of rows per subtask")
    subtasks = resolve_subtasks(tasks)
    by_config: dict[str, list[str]] = {}
    for s in subtasks:
        by_config.setdefault(s.config, []).append(s.name)
    for config, names in by_config.items():
        if len(names) > 1:
            print(
                f"warning: {', '.join(names)} share config {config}; medvision_replay keys responses by (config, row), "
                "so export and score one of them per run.",
                file=sys.stderr,
            )
    preflight([s.name for s in subtasks])
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(out_dir=out_dir)
    manifest_tasks: dict[str, Any] = {}
    warn_if_overridden(rule)
    with open(out_dir / REQUESTS_FILE, "w", encoding="utf-8") as fh:
        for s in subtasks:
            stub = stub_for(s)
            resolve_settings(s.name, stub["mv_variant"], overrides={"geometry": rule})  # the declared geometry
            rows = build_rows(stub)
            rows = rows[:limit] if limit else rows
            settings = settings_for(rows[0])
            if settings.geometry != rule:
                raise ExportRequestsError(
                    f"{s.name}: settings were frozen earlier with geometry {settings.geometry!r}; run export-requests "
                    "in a fresh process."
                )
            (out_dir / IMAGES_DIR / s.name).mkdir(parents=True, exist_ok=True)
            for row in rows:
                prompt, perceived = prompt_and_geometry(row)
                rel = image_rel_path(s.name, int(row["mv_row"]))
                render_image(row, settings).save(out_dir / rel, format="PNG")
                line = {
                    "task": s.name,
                    "config": s.config,
                    "row": int(row["mv_row"]),
                    "prompt": prompt,
                    "image": rel,
                    "geometry": rule,
                    "family": s.family,
                    "perceived": perceived,
                    "settings_id": settings.settings_id,
                }
                fh.write(json.dumps(line) + "\n")
            summary.rows_by_task[s.name] = len(rows)
            summary.requests += len(rows)
            manifest_tasks[s.name] = {
                "config": s.config,
                "rows": len(rows),
                "settings": settings.to_record(),
                "settings_id": settings.settings_id,
            }
    limit_flag = f" --limit {limit}" if limit else ""
    manifest = {
        "plugin_version": __version__,
        "geometry": rule,
        "limit": limit,
        "requests": summary.requests,
        "tasks": manifest_tasks,
        "score_with": (
            f"lmms-eval --model medvision_replay --model_args path=responses.jsonl,geometry={rule} "
            f"--tasks {','.join(manifest_tasks)}{limit_flag} --output_path OUT --log_samples"
        ),
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return summary
