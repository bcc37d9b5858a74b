"""``medvision-eval leaderboard``: paper Tables 2-4 rows from per-sample logs (SPEC §6)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import RecordError
from .labels import UNKNOWN_LABEL_POLICIES, minimum_group_size
from .leaderboard import PARSE_OPTIONS, PRESETS, build_leaderboard, load_records
from .report import FORMATS, render, table_csvs, to_json

DETAIL_FILES: dict[str, str] = {
    "detection_regions": "per_region_detection.json",
    "tl_labels": "per_label_tl.json",
    "ad_labels": "per_label_ad.json",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``leaderboard`` options to ``parser``."""
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="run folders or *_samples_medvision_*.jsonl files"
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="text", help="stdout report format (default: text)"
    )
    parser.add_argument(
        "--out", metavar="DIR", help="also write leaderboard.json, the table CSVs and per-label JSON"
    )
    parser.add_argument(
        "--parse",
        choices=PARSE_OPTIONS,
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
        "--preset", choices=PRESETS, default="v1", help="v1 (default) or paper (v1 + the two filters above)"
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
        "--allow-mixed-settings", action="store_true", help="accept several settings_ids per model"
    )
    parser.add_argument("--allow-multi-instance", action="store_true", help="accept multi-instance rows")
    parser.add_argument(
        "--last-wins", action="store_true", help="a later conflicting record replaces an earlier one"
    )
    parser.add_argument("--paper", action="store_true", help="print the published row under each known model")
    parser.add_argument(
        "--paper-model", metavar="KEY", help="published rows of this model_key (implies --paper)"
    )
    parser.add_argument(
        "--unknown-label",
        choices=UNKNOWN_LABEL_POLICIES,
        default="error",
        help="labels missing from the v1 maps",
    )
    parser.add_argument("--detail", action="store_true", help="also print per-region and per-label tables")


def build_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Load the records named by ``args.paths`` and build the leaderboard with the parsed options."""
    records = load_records(args.paths)
    min_size = args.min_group_size if args.min_group_size is not None else minimum_group_size()
    return build_leaderboard(
        records,
        parse=args.parse,
        box_fix=args.box_fix,
        ad_drop_near_zero=args.ad_drop_near_zero,
        tl_remove_multicluster=args.tl_remove_multicluster,
        preset=args.preset,
        min_group_size=min_size,
        allow_demo=args.allow_demo,
        allow_mixed_settings=args.allow_mixed_settings,
        allow_multi_instance=args.allow_multi_instance,
        last_wins=args.last_wins,
        unknown_label=args.unknown_label,
        paper=args.paper,
        paper_model=args.paper_model,
    )


def write_outputs(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write leaderboard.json, table2_detection.csv, table3_tl.csv, table4_ad.csv,
    per_region_detection.json, per_label_tl.json and per_label_ad.json into ``out_dir``."""
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
    return written


def run(args: argparse.Namespace) -> int:
    """Run the subcommand: 0 on success, 2 on a record or option error (message on stderr)."""
    try:
        result = build_from_args(args)
    except (RecordError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(result, args.format, detail=args.detail))
    if args.out:
        try:
            written = write_outputs(result, args.out)
        except OSError as exc:
            print(f"error: cannot write to {args.out}: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {len(written)} files to {args.out}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m medvision_metrics.leaderboard_cli PATH ...``."""
    parser = argparse.ArgumentParser(prog="medvision-eval leaderboard", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
