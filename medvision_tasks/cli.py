"""The `medvision-eval` console script (docs/reference.md §0.6)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .cli_values import OneLineParser, choice, flag_value, has_flag, metavar
from .errors import PlanError, SettingsError, VolumeError

FAMILIES = ("detection", "tl", "ad")


def _cmd_tasks_dir(args: argparse.Namespace) -> int:
    from .taskhook import tasks_dir

    print(tasks_dir())
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .catalogue import build_subtasks, groups, read_catalogue
    from .cli_values import invalid_value_message
    from .settings import resolve_settings

    subtasks = build_subtasks(read_catalogue())
    variants = list(dict.fromkeys(s.set for s in subtasks))
    if args.variant and args.variant not in variants:
        message = invalid_value_message("--variant", args.variant, variants)
        print(f"medvision-eval list: error: {message}", file=sys.stderr)
        return 2
    cap = resolve_settings("medvision-eval list").sample_cap

    def evaluated(n: int | None) -> str:
        return "-" if n is None else str(min(n, cap) if cap else n)

    cap_text = f"MEDVISION_SAMPLE_CAP={cap}" if cap else "no cap (MEDVISION_SAMPLE_CAP=0)"
    print(
        f"test_rows: single-instance Test rows of the config at annotation v1.0.0, before the cap; "
        f"evaluated: rows the subtask runs on ({cap_text}); '-' = not fixed in advance",
        file=sys.stderr,
    )
    print("subtask\tconfig\ttest_rows\tevaluated")
    for s in subtasks:
        if args.family and s.family != args.family:
            continue
        if args.variant and s.set != args.variant:
            continue
        count = "-" if s.n_test is None else str(s.n_test)
        print(f"{s.name}\t{s.config}\t{count}\t{evaluated(s.n_test)}")
    if not args.family and not args.variant:
        for name, (members, _) in groups(subtasks).items():
            print(f"{name}\tgroup of {len(members)}\t-\t-")
    return 0


def _cmd_phantom(args: argparse.Namespace) -> int:
    from .demo import generate_phantom

    root = generate_phantom(Path(args.out), seed=args.seed)
    print(root)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .data import parse_config_name
    from .row_cache import rows_for_config
    from .settings import resolve_settings

    root = Path(args.root) if args.root else None
    if root is None:
        from .hooks import resolve_data_root
        from .settings import data_dir_from_env

        if not args.demo and not data_dir_from_env():
            raise PlanError(
                "MEDVISION_DATA_DIR is not set and no --root given; point it at a MedVision data root (the folder "
                "holding Datasets/), or add --demo to read the bundled phantom root."
            )
        root = resolve_data_root("demo" if args.demo else "real")
    config = args.config
    if args.split:
        config = parse_config_name(config).with_split(args.split.capitalize()).config
    settings = resolve_settings(f"export:{config}")
    rows = rows_for_config(
        root,
        config,
        planner_version=settings.planner_version,
        filtering=settings.filtering,
        cap=args.cap if args.cap is not None else 0,
    )
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        for row in rows:
            out.write(json.dumps(row, sort_keys=True) + "\n")
    finally:
        if args.out:
            out.close()
    print(f"{len(rows)} rows of {config}", file=sys.stderr)
    return 0


def _read_skipped(out: Path) -> object:
    """The skip record written by MEDVISION_SKIP_MISSING runs, if any."""
    from .preflight import SKIPPED_FILE

    path = out / SKIPPED_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {"unreadable": str(path)}


def _cmd_run(args: argparse.Namespace, rest: list[str]) -> int:
    """Delegate to the lmms-eval CLI, supervised (run_wrapper.py); exit 1 when this child wrote no results
    (lmms-eval itself exits 0 on errors)."""
    import time

    from . import run_wrapper
    from .settings import resolve_settings
    from .strict_results import clean_results_file
    from .taskhook import tasks_dir

    argv = list(rest)
    if not has_flag(argv, "--include_path"):
        argv += ["--include_path", tasks_dir()]
    if not has_flag(argv, "--log_samples"):
        argv.append("--log_samples")
    lmms_eval = Path(sys.executable).with_name("lmms-eval")
    cmd = [str(lmms_eval)] if lmms_eval.exists() else [sys.executable, "-m", "lmms_eval"]
    out = Path(value) if (value := flag_value(argv, "--output_path")) else None
    if out is None:
        return run_wrapper.run_child(cmd + argv)
    try:
        lock = run_wrapper.take_lock(out)
    except (run_wrapper.RunLockedError, OSError) as exc:
        run_wrapper.print_error(str(exc))
        return 1
    try:
        started = time.time()
        before = run_wrapper.results_snapshot(out)
        status = run_wrapper.run_child(cmd + argv)
        results = run_wrapper.own_results(out, before, argv)
        if status == 0 and not results:
            print(f"error: lmms-eval wrote no results under {out}; see the error above.", file=sys.stderr)
            status = 1
        for path in results:
            clean_results_file(path)  # strict JSON, no per-sample record entries (README: Errors and outputs)
        try:
            from importlib.metadata import version

            lmms_version = version("lmms_eval")
        except Exception:
            lmms_version = None
        run_wrapper.write_run_record(
            out,
            {
                "plugin_version": __version__,
                "lmms_eval_version": lmms_version,
                "argv": argv,
                "global_settings": resolve_settings("medvision-eval run").to_record(),
                "skipped": _read_skipped(out),
                "results_files": [str(p.relative_to(out)) for p in results],
                "exit_status": status,
            },
            started,
        )
    finally:
        os.close(lock)
    return status


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    """The leaderboard, then a note per model folder that lacks some of the paper subtasks."""
    from medvision_metrics import leaderboard_cli

    from .coverage import missing_paper_subtasks

    status = leaderboard_cli.run(args)
    if status == 0:
        for line in missing_paper_subtasks(args.paths):
            print(f"note: {line}", file=sys.stderr)
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="medvision-eval", description="MedVision benchmark for lmms-eval.")
    parser.add_argument("--version", action="version", version=f"lmms-eval-medvision {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tasks-dir", help="print the folder of the task YAMLs (for --include_path)")
    p.set_defaults(func=_cmd_tasks_dir)

    p = sub.add_parser("list", help="subtasks and groups with their official configs and expected counts")
    p.add_argument("--family", type=choice("--family", FAMILIES), metavar=metavar(FAMILIES))
    p.add_argument(
        "--variant", help="main, res336, res560, res896, cot, detection_planeood, ..., demo, spacing, demo_spacing"
    )
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("phantom", help="write the synthetic phantom data root")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_phantom)

    p = sub.add_parser("export", help="flattened rows of one config as JSONL")
    p.add_argument("--config", required=True, help="official config name, e.g. KiTS23_BoxSize_Task01_Axial_Test")
    p.add_argument("--split", type=choice("--split", ("test", "train")), metavar="{test,train}")
    p.add_argument("--root", help="data root (default: MEDVISION_DATA_DIR)")
    p.add_argument("--demo", action="store_true", help="read the bundled phantom root")
    p.add_argument("--cap", type=int, help="keep the first N rows (default: all)")
    p.add_argument("--out")
    p.set_defaults(func=_cmd_export)

    from . import export_requests

    p = sub.add_parser("export-requests", help="prompts plus rendered PNGs as JSONL, for models run outside lmms-eval")
    export_requests.add_arguments(p)
    p.set_defaults(func=export_requests.run)

    p = sub.add_parser("run", help="lmms-eval with --include_path/--log_samples added; writes medvision_run.json")
    p.set_defaults(func=None)

    from . import doctor

    p = sub.add_parser("doctor", help="check a data root: plans, row counts, files, orientation, credentials")
    doctor.add_arguments(p)
    p.set_defaults(func=doctor.run)

    from medvision_metrics import compare_cli, leaderboard_cli

    p = sub.add_parser("leaderboard", help="paper Tables 2-4 from per-sample logs")
    leaderboard_cli.add_arguments(p)
    p.set_defaults(func=_cmd_leaderboard)

    from .viewer import cli as viewer_cli

    p = sub.add_parser("view", help="HTML prediction viewer: images with GT and prediction, prompts, responses")
    viewer_cli.add_arguments(p)
    p.set_defaults(func=viewer_cli.run)

    p = sub.add_parser("compare", help="CI regression gate over two leaderboard JSONs or run folders")
    compare_cli.add_arguments(p)
    p.set_defaults(func=compare_cli.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "run":
        from .run_help import model_args_error, print_run_help, wants_help

        if wants_help(argv[1:]):
            return print_run_help()
        if problem := model_args_error(argv[1:]):
            print(f"medvision-eval run: error: {problem}", file=sys.stderr)
            return 2
        return _cmd_run(argparse.Namespace(), argv[1:])
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (PlanError, VolumeError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
