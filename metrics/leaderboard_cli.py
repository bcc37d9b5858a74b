"""``medvision-eval leaderboard``: paper Tables 2-4 rows from per-sample logs (docs/reference.md §6)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .bootstrap import DEFAULT_CI_ITERATIONS, DEFAULT_CI_SEED, check_ci_level
from .boxsize import DEFAULT_BOXSIZE_DRAWS, DEFAULT_BOXSIZE_SEED
from .errors import RecordError
from .figure import check_figure_path, require_matplotlib, write_boxsize_plot, write_per_label_figure
from .labels import UNKNOWN_LABEL_POLICIES, minimum_group_size
from .leaderboard import PARSE_OPTIONS, PRESETS, LeaderboardOptions, build_leaderboard
from .leaderboard_html import write_leaderboard_html
from .options import choice, metavar
from .records import load_records
from .report import FORMATS, SPACING_CSV, boxsize_csv, render, spacing_csv, table_csvs, to_json

DETAIL_FILES: dict[str, str] = {
    "detection_regions": "per_region_detection.json",
    "tl_labels": "per_label_tl.json",
    "ad_labels": "per_label_ad.json",
}
BOXSIZE_CSV = "boxsize_detection.csv"
BOXSIZE_PLOT = "boxsize_detection.png"


def _ci_level(text: str) -> float:
    try:
        return check_ci_level(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``leaderboard`` options to ``parser``.

    Long on purpose: one declarative `add_argument` call per option, in the order `--help` shows them.
    """
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="run folders or *_samples_medvision_*.jsonl files"
    )
    parser.add_argument(
        "--format",
        type=choice("--format", FORMATS),
        metavar=metavar(FORMATS),
        default="text",
        help="stdout report format (default: text)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="also write leaderboard.json, the table CSVs and per-label JSON"
    )
    parser.add_argument(
        "--parse",
        type=choice("--parse", PARSE_OPTIONS),
        metavar=metavar(PARSE_OPTIONS),
        default="as-run",
        help="re-parse rule (default: as-run, the recorded one)",
    )
    parser.add_argument(
        "--box-fix", action="store_const", const=True, default=None, help="sort and clamp boxes"
    )
    parser.add_argument(
        "--ad-drop-near-zero",
        action="store_const",
        const=True,
        default=None,
        help="drop A/D samples with GT < 0.1",
    )
    parser.add_argument(
        "--tl-remove-multicluster",
        action="store_const",
        const=True,
        default=None,
        help="drop T/L slices listed in the multi-cluster files",
    )
    parser.add_argument(
        "--preset",
        type=choice("--preset", PRESETS),
        metavar=metavar(PRESETS),
        default="v1",
        help="v1 (default) or paper (v1 + the two filters above)",
    )
    parser.add_argument(
        "--min-group-size",
        type=int,
        default=None,
        metavar="N",
        help="detection region size floor (default: 50, the v1 MINIMUM_GROUP_SIZE)",
    )
    parser.add_argument("--allow-demo", action="store_true", help="accept records from the phantom data root")
    parser.add_argument(
        "--allow-mixed",
        "--allow-mixed-settings",
        dest="allow_mixed",
        action="store_true",
        help="accept several settings_ids in one model and different annotation versions, data/image settings "
        "or scoring switches in one table, and records of one config built from different rows (plan file, "
        "Arrow build, plan overrides); numbers then not comparable",
    )
    parser.add_argument("--allow-multi-instance", action="store_true", help="accept multi-instance rows")
    parser.add_argument(
        "--latest",
        action="store_true",
        help="when a model and task were run more than once, keep the newest samples file (file-name timestamp, "
        "else modification time)",
    )
    parser.add_argument(
        "--last-wins",
        action="store_true",
        help="merge repeated runs; a later conflicting record replaces an earlier one",
    )
    parser.add_argument("--paper", action="store_true", help="print the published row under each known model")
    parser.add_argument(
        "--paper-model", metavar="KEY", help="published rows of this model_key (implies --paper)"
    )
    parser.add_argument(
        "--unknown-label",
        type=choice("--unknown-label", UNKNOWN_LABEL_POLICIES),
        metavar=metavar(UNKNOWN_LABEL_POLICIES),
        default="error",
        help="labels missing from the v1 maps",
    )
    parser.add_argument("--detail", action="store_true", help="also print per-region and per-label tables")
    parser.add_argument(
        "--ci",
        type=_ci_level,
        metavar="LEVEL",
        help="bootstrap confidence intervals at this level (e.g. 0.95) for every cell, resampling whole volumes",
    )
    parser.add_argument(
        "--ci-iterations",
        type=_positive_int,
        default=DEFAULT_CI_ITERATIONS,
        metavar="N",
        help=f"bootstrap resamples (default: {DEFAULT_CI_ITERATIONS})",
    )
    parser.add_argument(
        "--ci-seed", type=int, default=DEFAULT_CI_SEED, metavar="N", help=f"bootstrap seed (default: {DEFAULT_CI_SEED})"
    )
    parser.add_argument(
        "--figure",
        metavar="PATH",
        help="write the per-label figure (paper Fig. 3) to PATH (.png, .svg or .pdf; needs matplotlib)",
    )
    parser.add_argument(
        "--boxsize",
        action="store_true",
        help=f"detection per GT box/image area bin beside a random-box reference; with --out also {BOXSIZE_CSV} "
        f"and {BOXSIZE_PLOT}",
    )
    parser.add_argument(
        "--boxsize-seed",
        type=int,
        default=DEFAULT_BOXSIZE_SEED,
        metavar="N",
        help=f"seed of the random-box reference (default: {DEFAULT_BOXSIZE_SEED}, v1's SEED)",
    )
    parser.add_argument(
        "--boxsize-draws",
        type=_positive_int,
        default=DEFAULT_BOXSIZE_DRAWS,
        metavar="N",
        help=f"random boxes per GT sample (default: {DEFAULT_BOXSIZE_DRAWS})",
    )


def build_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Load the records named by ``args.paths`` and build the leaderboard with the parsed options."""
    records = load_records(args.paths)
    min_size = args.min_group_size if args.min_group_size is not None else minimum_group_size()
    fields = {name: getattr(args, name) for name in LeaderboardOptions.__dataclass_fields__}
    return build_leaderboard(records, LeaderboardOptions(**dict(fields, min_group_size=min_size)))


def write_outputs(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write leaderboard.json, table2_detection.csv, table3_tl.csv, table4_ad.csv,
    per_region_detection.json, per_label_tl.json and per_label_ad.json into ``out_dir``; with spacing
    variants also spacing_sensitivity.csv; with a box-size analysis also boxsize_detection.csv and
    boxsize_detection.png (needs matplotlib)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    target = out / "leaderboard.json"
    target.write_text(to_json(result), encoding="utf-8")
    written.append(target)
    for name, text in table_csvs(result).items():
        target = out / name
        target.write_text(text, encoding="utf-8")
        written.append(target)
    for key, name in DETAIL_FILES.items():
        target = out / name
        target.write_text(to_json(result["details"][key]), encoding="utf-8")
        written.append(target)
    if result.get("spacing"):
        target = out / SPACING_CSV
        target.write_text(spacing_csv(result), encoding="utf-8")
        written.append(target)
    if result.get("boxsize"):
        target = out / BOXSIZE_CSV
        target.write_text(boxsize_csv(result["boxsize"]), encoding="utf-8")
        written.append(target)
        written.append(write_boxsize_plot(result["boxsize"], out / BOXSIZE_PLOT))
    return written


def _preflight(args: argparse.Namespace) -> None:
    """Check what can fail after the table is built, before building it (no partial outputs)."""
    if args.figure:
        check_figure_path(args.figure)
    if args.figure or (args.boxsize and args.out):
        require_matplotlib()


def run(args: argparse.Namespace) -> int:
    """Run the subcommand: 0 on success, 2 on a record, option, dependency or output error (message on stderr)."""
    try:
        _preflight(args)
        result = build_from_args(args)
    except (RecordError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(result, args.format, detail=args.detail))
    if args.format not in ("text", "md"):  # those formats print the warnings themselves
        for warning in result.get("warnings") or []:
            print(f"warning: {warning}", file=sys.stderr)
    try:
        if args.out:
            written = write_outputs(result, args.out)
            written.append(write_leaderboard_html(result, args.out, args.paths))
            print(f"wrote {len(written)} files to {args.out}", file=sys.stderr)
        elif args.boxsize:
            print(f"box-size analysis: pass --out DIR to also write {BOXSIZE_CSV} and {BOXSIZE_PLOT}", file=sys.stderr)
        if args.figure:
            print(f"wrote {write_per_label_figure(result, args.figure)}", file=sys.stderr)
    except OSError as exc:
        print(f"error: cannot write outputs: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m medvision_metrics.leaderboard_cli PATH ...``."""
    parser = argparse.ArgumentParser(prog="medvision-eval leaderboard", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
