"""`medvision-eval doctor` (docs/reference.md §0.6): can this data root run the requested MedVision subtasks?

Checks, in order: datasets and plan versions present; rows per config beside the catalogue's expected counts
(docs/reference.md §2.2, §2.4); referenced files (one list); decoding and RAS+ orientation of a sample of volumes;
credentials-gated datasets; labels and descriptions for review (docs/reference.md §9 Q4); optionally plan rows against
an official Arrow build (`--compare-arrow`, docs/reference.md §1.6). Exit status: 1 when a requested subtask cannot run
or an Arrow comparison differs, else 0. A scan progress bar goes to stderr; the report goes to stdout.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from medvision_metrics.options import closest_match

from .arrow_rows import RowSources, iter_arrow_rows
from .catalogue import Subtask, build_subtasks, groups, read_catalogue
from .data import (
    PATH_FIELDS,
    RowStats,
    apply_overrides,
    find_plan,
    iter_rows,
    official_view,
    parse_config_name,
    plan_inputs,
    plan_task,
    plan_versions,
    read_plan,
    resolve_data_path,
    rows_identity_hash,
)
from .errors import PlanError, SettingsError, VolumeError
from .integrity import FIX, file_problem
from .settings import Settings, allow_non_ras, data_dir_from_env, resolve_settings

DEFAULT_TASKS = ("medvision",)
HASH_ROWS = 1000
# docs/reference.md §9 Q3: the v1 task list shows 916,437; the documented filter gives 891,298, which doctor accepts.
ABDOMENATLAS_CONFIG = "AbdomenAtlas1.0Mini_BoxSize_Task01_Axial_Test"
ABDOMENATLAS_COUNTS = {"accepted": 891_298, "v1 task list": 916_437}
GATED_DATASETS = {
    "FeTA24": "needs a Synapse account and personal access token with the FeTA data-use terms accepted; "
    "pass the token to the official downloader",
    "SKM-TEA": "restricted: request access from the data holder, then download the private re-hosting the "
    "MedVision authors share after access is granted",
    "ToothFairy2": "restricted: request access from the data holder, then download the private re-hosting the "
    "MedVision authors share after access is granted",
    "AbdomenAtlas1.0Mini": "gated on Hugging Face: accept the dataset's terms on its page and log in "
    "(`huggingface-cli login`) before running the official downloader",
}
DOWNLOAD_HINT = "download it with the official MedVision downloader (datasets==3.6.0, separate environment)"


@dataclass
class ConfigReport:
    """What doctor learned about one config (shared by all subtasks on it)."""

    config: str
    subtasks: list[str]
    expected: int | None
    rows: int = 0
    evaluated: int = 0
    error: str | None = None
    identity_hash: str | None = None
    needed_files: set[str] = field(default_factory=set)
    other_files: set[str] = field(default_factory=set)
    first_images: list[str] = field(default_factory=list)
    stats: RowStats = field(default_factory=RowStats)

    @property
    def dataset(self) -> str:
        return parse_config_name(self.config).dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `medvision-eval doctor`."""
    parser.add_argument("--tasks", nargs="+", metavar="NAME", help="subtasks or groups (default: medvision, the 43)")
    parser.add_argument("--root", help="data root (default: MEDVISION_DATA_DIR)")
    parser.add_argument("--compare-arrow", metavar="DIR", help="folder of official save_to_disk folders per config")
    parser.add_argument("--sample-volumes", type=int, default=2, metavar="N", help="volumes decoded per dataset")
    parser.add_argument(
        "--full",
        action="store_true",
        help="decode every referenced volume (images and masks of Test and Train cases; slow, with a progress bar) "
        "instead of the cheap checks plus --sample-volumes per dataset",
    )


def expand_tasks(names: list[str]) -> tuple[list[Subtask], list[str]]:
    """Catalogue subtasks named directly or through (nested) groups; unknown names with a suggestion."""
    subtasks = build_subtasks(read_catalogue())
    by_name = {s.name: s for s in subtasks}
    members = {g: m for g, (m, _) in groups(subtasks).items()}
    found: dict[str, Subtask] = {}
    unknown = []
    stack = list(reversed(names))
    while stack:
        name = stack.pop()
        if name in by_name:
            found.setdefault(name, by_name[name])
        elif name in members:
            stack.extend(reversed(members[name]))
        else:
            close = closest_match(name, [*by_name, *members])
            unknown.append(f"{name}" + (f" (did you mean {close}?)" if close else ""))
    return list(found.values()), unknown


class Progress:
    """Plain-text progress bar on a stream (no dependency)."""

    def __init__(self, total: int, stream: TextIO, width: int = 30, title: str = "scanning") -> None:
        self.total, self.stream, self.width, self.done = max(total, 1), stream, width, 0
        self.title = title

    def step(self, label: str) -> None:
        self.done += 1
        if self.done != self.total and self.done % max(1, self.total // 500):
            return  # at most about 500 redraws
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.title} [{bar}] {self.done}/{self.total} {label[:60]:<60}")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _file_problem(path: str) -> str | None:
    """Why a referenced file is unusable, from cheap checks (`integrity.file_problem`), or None."""
    return file_problem(path)


def _case_files(root: Path, config: str, settings: Any, sources: RowSources) -> set[str]:
    """Every image, mask and landmark file of the config's plan task, Test and Train cases alike."""
    cfg = parse_config_name(config)
    inputs = plan_inputs(root, cfg, settings.planner_version)
    task = plan_task(read_plan(inputs.plan_path), cfg.task_id, str(inputs.plan_path))
    files: set[str] = set()
    for split in ("test_cases", "train_cases"):
        for i, case in enumerate(task.get(split) or []):
            for key in PATH_FIELDS:
                if isinstance(case, dict) and case.get(key):
                    where = f"{inputs.plan_path} task {cfg.task_id} {split}[{i}] {key}"
                    files.add(str(resolve_data_path(root, cfg.dataset, case[key], where)[0]))
    return files


def _scan_config(root: Path, report: ConfigReport, settings: Any, sources: RowSources) -> None:
    """Flatten one config (no cap), keep its counts, hash and referenced files."""
    cap = settings.sample_cap
    first: list[dict[str, Any]] = []
    try:
        rows: Iterator[dict[str, Any]] = iter_rows(
            root,
            report.config,
            planner_version=settings.planner_version,
            filtering=settings.filtering,
            stats=report.stats,
            overrides=sources.overrides,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for n, row in enumerate(rows):
                if n < HASH_ROWS:
                    first.append(row)
                evaluated = not cap or n < cap
                for key in PATH_FIELDS:
                    if key in row:
                        (report.needed_files if evaluated and key != "mask_file" else report.other_files).add(row[key])
                if evaluated and row["image_file"] not in report.first_images and len(report.first_images) < 8:
                    report.first_images.append(row["image_file"])
                report.rows = n + 1
        report.other_files |= _case_files(root, report.config, settings, sources)
    except (PlanError, VolumeError, SettingsError) as exc:
        report.error = str(exc)
        return
    report.evaluated = min(report.rows, cap) if cap else report.rows
    report.other_files -= report.needed_files
    if first:
        ds_dir = (root / "Datasets" / report.dataset).resolve()
        report.identity_hash = rows_identity_hash(first, ds_dir, HASH_ROWS)


def _print_datasets(root: Path, ceiling: str, out: TextIO) -> set[str]:
    folder = root / "Datasets"
    present = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    print(f"\nDatasets present ({len(present)}), plan versions by kind (* = used under ceiling {ceiling}):", file=out)
    for name in present:
        parts = []
        for kind, versions in plan_versions(folder / name).items():
            try:
                used = find_plan(folder / name, kind, ceiling)[1]
            except PlanError:
                used = None
            parts.append(f"{kind} " + ", ".join(f"{v}*" if v == used else v for v in versions))
        print(f"  {name:<22} {'; '.join(parts) or 'no benchmark_plan_*.json.gz files'}", file=out)
    return set(present)


def _check_volumes(reports: list[ConfigReport], per_dataset: int, allow: bool, out: TextIO) -> dict[str, str]:
    """Decode the first volumes of each dataset; returns {path: problem}."""
    chosen: dict[str, list[str]] = {}
    for report in reports:
        if report.error:
            continue
        picks = chosen.setdefault(report.dataset, [])
        for path in report.first_images:
            if len(picks) < per_dataset and path not in picks and _file_problem(path) is None:
                picks.append(path)
    from .render import check_volume, volume_orientation

    problems: dict[str, str] = {}
    checked = 0
    for paths in chosen.values():
        for path in paths:
            checked += 1
            try:
                codes = volume_orientation(path)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    check_volume(path, allow_non_ras=allow)
                if codes != "RAS":
                    print(
                        f"  warning: {path}: orientation {codes} is not RAS+ (allowed by MEDVISION_ALLOW_NON_RAS)",
                        file=out,
                    )
            except VolumeError as exc:
                problems[path] = str(exc)
    print(
        f"\nSampled volumes: {checked} decoded in full ({per_dataset} per dataset), {len(problems)} with problems.",
        file=out,
    )
    for msg in problems.values():
        print(f"  {msg}", file=out)
    return problems


def _decode_all(
    reports: list[ConfigReport], problems: dict[str, str], allow: bool, out: TextIO, err: TextIO
) -> dict[str, str]:
    """`--full`: decode every referenced NIfTI volume (images and masks) that passed the cheap checks.

    Prints the count, the time and the rate (volumes/s, MB/s of compressed files); returns {path: problem}.
    """
    import time

    from .render import check_volume

    paths = sorted(
        {
            p
            for r in reports
            if not r.error
            for p in r.needed_files | r.other_files
            if p.endswith((".nii", ".nii.gz")) and p not in problems
        }
    )
    found: dict[str, str] = {}
    progress = Progress(len(paths), err, title="decoding")
    size = 0
    started = time.perf_counter()
    for path in paths:
        progress.step(Path(path).name)
        size += Path(path).stat().st_size
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                check_volume(path, allow_non_ras=allow)
        except VolumeError as exc:
            found[path] = str(exc)
    progress.close()
    seconds = max(time.perf_counter() - started, 1e-9)
    print(
        f"\nFull decode: {len(paths)} referenced volume(s), {size / 1e6:.1f} MB, in {seconds:.1f} s "
        f"({len(paths) / seconds:.1f} volumes/s, {size / 1e6 / seconds:.1f} MB/s); {len(found)} with problems.",
        file=out,
    )
    for msg in found.values():
        print(f"  {msg}", file=out)
    return found


def _print_review(root: Path, reports: list[ConfigReport], ceiling: str, sources: RowSources, out: TextIO) -> None:
    print(
        "\nLabels and descriptions for review (dataset, task, kind, label, name, description; "
        "docs/reference.md §9 Q4):",
        file=out,
    )
    seen = set()
    for report in reports:
        cfg = parse_config_name(report.config)
        key = (cfg.dataset, cfg.plan_kind, cfg.task_id)
        if key in seen:
            continue
        seen.add(key)
        try:
            path = find_plan(root / "Datasets" / cfg.dataset, cfg.plan_kind, ceiling)[0]
            task = apply_overrides(
                plan_task(read_plan(path), cfg.task_id, str(path)), sources.overrides, cfg.dataset, cfg.plan_kind
            )
        except PlanError:
            continue
        desc = repr(str(task.get("image_description") or ""))
        labels = sorted(task.get("labels_map", {}).items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)
        if cfg.family == "ad" or not labels:
            print(f"  {cfg.dataset}\t{cfg.task_id}\t{cfg.plan_kind}\t-\t-\t{desc}", file=out)
        for label, name in labels if cfg.family != "ad" else []:
            mark = " (target)" if cfg.family == "tl" and str(task.get("target_label")) == str(label) else ""
            print(f"  {cfg.dataset}\t{cfg.task_id}\t{cfg.plan_kind}\t{label}\t{name}{mark}\t{desc}", file=out)


def _compare_arrow(
    root: Path, reports: list[ConfigReport], arrow_dir: Path, settings: Any, sources: RowSources, out: TextIO
) -> int:
    """Plan rows against Arrow rows per config (order, fields, float16 values); returns the number that differ."""
    print(f"\nPlan rows against the Arrow build in {arrow_dir} (order, fields, values after float16):", file=out)
    differ = 0
    for report in reports:
        source = arrow_dir / report.config
        if report.error:
            continue
        if not source.exists():
            print(f"  skip   {report.config}: no {source.name}/ in the Arrow folder", file=out)
            continue
        ds_dir = (root / "Datasets" / report.dataset).resolve()
        kw = {"planner_version": settings.planner_version, "filtering": settings.filtering}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                plan_rows = iter_rows(root, report.config, overrides=sources.overrides, **kw)
                arrow_rows = iter_arrow_rows(
                    root, report.config, source, remaps=sources.path_remap, overrides=sources.overrides, **kw
                )
                diff, n_plan, n_arrow = None, 0, 0
                for i, (a, b) in enumerate(_zip_all(plan_rows, arrow_rows)):
                    n_plan += a is not None
                    n_arrow += b is not None
                    if diff is None and a is not None and b is not None:
                        va, vb = official_view(a, ds_dir), official_view(b, ds_dir)
                        if va != vb:
                            fld = next(k for k in (*va, *vb) if va.get(k) != vb.get(k))
                            diff = f"row {i} field {fld}: plan {va.get(fld)!r} != arrow {vb.get(fld)!r}"
        except (PlanError, SettingsError, VolumeError) as exc:
            differ += 1
            print(f"  ERROR  {report.config}: {exc}", file=out)
            continue
        if n_plan != n_arrow and diff is None:
            diff = f"{n_plan} plan rows != {n_arrow} Arrow rows"
        elif n_plan != n_arrow:
            diff += f" (and {n_plan} plan rows != {n_arrow} Arrow rows)"
        differ += diff is not None
        status = "DIFFER" if diff else "same"
        print(
            f"  {status:<6} {report.config}: {n_plan} rows" + (f"; first difference: {diff}" if diff else ""), file=out
        )
    return differ


def _zip_all(a: Iterator[Any], b: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
    sentinel = object()
    while True:
        x, y = next(a, sentinel), next(b, sentinel)
        if x is sentinel and y is sentinel:
            return
        yield (None if x is sentinel else x), (None if y is sentinel else y)


def _check_files(listing: list[ConfigReport], args: argparse.Namespace, out: TextIO, err: TextIO) -> dict[str, str]:
    """Check every file the rows reference (and, with --full, decode every volume); mark the reports whose
    evaluated rows read a bad file; print the Files section. Returns {path: problem}."""
    problems: dict[str, str] = {}
    referenced = sorted({p for r in listing for p in r.needed_files | r.other_files})
    progress = Progress(len(referenced), err, title="checking files")
    for path in referenced:
        progress.step(Path(path).name)
        if (why := _file_problem(path)) is not None:
            problems[path] = why
    progress.close()
    if getattr(args, "full", False):
        volume_problems = _decode_all(listing, problems, allow_non_ras(), out, err)
        problems.update({p: "cannot be decoded (see Full decode)" for p in volume_problems if p not in problems})
    else:
        volume_problems = _check_volumes(listing, max(args.sample_volumes, 0), allow_non_ras(), out)
    for report in listing:
        if report.error:
            continue
        bad = sorted(p for p in report.needed_files if p in problems) + sorted(
            p for p in report.first_images if p in volume_problems and p not in problems
        )
        if bad:
            report.error = f"{len(bad)} referenced file(s) missing or unreadable (listed under Files)"
    if problems:
        needed = {p for r in listing for p in r.needed_files}
        print(f"\nFiles: {len(problems)} referenced file(s) missing or unreadable:", file=out)
        for path, why in sorted(problems.items()):
            note = "" if path in needed else " (mask, Train case or row past the cap: not read by the evaluated rows)"
            print(f"  {why}: {path}{note}", file=out)
        print(f"  Fix: {FIX}.", file=out)
    else:
        n_files = len({p for r in listing for p in r.needed_files | r.other_files})
        print(f"\nFiles: all {n_files} referenced files present.", file=out)
    return problems


def _print_subtasks(
    listing: list[ConfigReport],
    reports: dict[str, ConfigReport],
    settings: Settings,
    present: set[str],
    out: TextIO,
) -> None:
    """The Subtasks section (rows against the expected counts) and the AbdomenAtlas identity hash."""
    exact = settings.planner_version == "1.0.0" and settings.filtering
    print(
        "\nSubtasks (rows = single-instance Test rows before the cap; "
        "expected = docs/reference.md §2.2/§2.4 at v1.0.0):",
        file=out,
    )
    for report in listing:
        names = report.subtasks[0] + (f" (+{len(report.subtasks) - 1} variants)" if len(report.subtasks) > 1 else "")
        if report.error:
            gated = GATED_DATASETS.get(report.dataset) if report.dataset not in present else None
            hint = f" [{report.dataset} {gated}]" if gated else ""
            print(f"  FAIL  {names}  {report.config}: {report.error}{hint}", file=out)
            continue
        expected = report.expected if exact else None
        if report.config == ABDOMENATLAS_CONFIG and exact:
            expected = ABDOMENATLAS_COUNTS["accepted"]
        status = "ok" if expected is None or report.rows == expected else "DIFF"
        exp = "n/a" if expected is None else str(expected)
        print(
            f"  {status:<5} {names}  {report.config}  rows {report.rows}  expected {exp}  evaluated {report.evaluated}",
            file=out,
        )
    atlas = reports.get(ABDOMENATLAS_CONFIG)
    if atlas is not None and atlas.identity_hash:
        print(
            f"\nIdentity hash of the first {HASH_ROWS} rows (docs/reference.md §9 Q3): "
            f"{ABDOMENATLAS_CONFIG} rows {atlas.rows} "
            f"(accepted {ABDOMENATLAS_COUNTS['accepted']:,}; v1 task list {ABDOMENATLAS_COUNTS['v1 task list']:,}) "
            f"sha256 {atlas.identity_hash}",
            file=out,
        )



def _print_summary(
    listing: list[ConfigReport],
    problems: dict[str, str],
    present: set[str],
    n_real: int,
    n_unknown: int,
    differ: int,
    compared: bool,
    out: TextIO,
) -> int:
    """The Summary lines; returns the exit status (1 when a subtask cannot run, a file outside the evaluated rows
    is bad, or a config differs from the Arrow build)."""
    failed = [r for r in listing if r.error]
    n_failed = sum(len(r.subtasks) for r in failed) + n_unknown
    n_total = n_real + n_unknown
    needed_all = {p for r in listing for p in r.needed_files}
    outside = sorted(p for p in problems if p not in needed_all)
    print(f"\nSummary: {n_total - n_failed} of {n_total} requested subtask(s) can run", file=out, end="")
    print(f"; {differ} config(s) differ from the Arrow build." if compared else ".", file=out)
    if outside:
        print(
            f"{len(outside)} referenced file(s) outside the evaluated rows (masks, Train cases) are missing or "
            f"unreadable, e.g. {outside[0]}; {FIX}.",
            file=out,
        )
    if failed:
        datasets = sorted({r.dataset for r in failed if r.dataset not in present})
        if datasets:
            print(f"Missing datasets: {', '.join(datasets)}; {DOWNLOAD_HINT}.", file=out)
    return 1 if n_failed or differ or outside else 0


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The doctor report; exit status 1 when a requested subtask cannot run (or an Arrow comparison differs)."""
    out = out or sys.stdout
    err = err or sys.stderr
    subtasks, unknown = expand_tasks(list(args.tasks or DEFAULT_TASKS))
    settings = resolve_settings("medvision-eval doctor")
    sources = RowSources.from_env()
    value = args.root or data_dir_from_env()
    print("MedVision doctor", file=out)
    for name in unknown:
        print(f"  FAIL unknown task or group {name}; `medvision-eval list` shows the names", file=out)
    demo = [s for s in subtasks if s.data_root_kind == "demo"]
    real = [s for s in subtasks if s.data_root_kind == "real"]
    if demo and not real:
        from .demo import ensure_demo_root

        real, value = demo, args.root or str(ensure_demo_root())
        print(f"  {len(demo)} demo subtask(s): checking the phantom root they read", file=out)
    elif demo:
        print(
            f"  {len(demo)} demo subtask(s) not checked with the real ones; run "
            "`medvision-eval doctor --tasks medvision_demo` for the phantom root",
            file=out,
        )
    if not real:
        return 1 if unknown else 0
    if not value:
        print(
            "  FAIL MEDVISION_DATA_DIR is not set and no --root given; point it at the folder holding Datasets/.",
            file=out,
        )
        return 1
    root = Path(value).expanduser()
    print(
        f"data root {root}; planner version ceiling {settings.planner_version}; "
        f"{'single-instance filters' if settings.filtering else 'filters OFF (multi-instance)'}; "
        f"sample cap {settings.sample_cap or 'none'}",
        file=out,
    )
    if not (root / "Datasets").is_dir():
        what = "does not exist" if not root.is_dir() else "has no Datasets/ folder"
        print(f"  FAIL {root} {what}; point MEDVISION_DATA_DIR at a root filled by the official downloader.", file=out)
        return 1
    present = _print_datasets(root, settings.planner_version, out)

    reports: dict[str, ConfigReport] = {}
    for s in real:
        reports.setdefault(s.config, ConfigReport(s.config, [], s.n_test)).subtasks.append(s.name)
    progress = Progress(len(reports), err)
    for report in reports.values():
        progress.step(report.config)
        _scan_config(root, report, settings, sources)
    progress.close()
    listing = list(reports.values())

    problems = _check_files(listing, args, out, err)

    _print_subtasks(listing, reports, settings, present, out)

    missing_gated = [d for d in GATED_DATASETS if d not in present]
    if missing_gated:
        print("\nCredentials-gated datasets that are missing:", file=out)
        needed = {r.dataset for r in listing}
        for name in missing_gated:
            used = "needed by the requested subtasks" if name in needed else "not requested"
            print(f"  {name} ({used}): {GATED_DATASETS[name]}; then {DOWNLOAD_HINT}.", file=out)

    _print_review(root, [r for r in listing if not r.error], settings.planner_version, sources, out)

    differ = 0
    if args.compare_arrow:
        differ = _compare_arrow(root, listing, Path(args.compare_arrow), settings, sources, out)

    return _print_summary(listing, problems, present, len(real), len(unknown), differ, bool(args.compare_arrow), out)
