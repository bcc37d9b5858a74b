"""``medvision-eval compare BASELINE CURRENT``: CI regression gate over two leaderboards."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .compare import compare
from .errors import RecordError
from .leaderboard import build_leaderboard
from .records import load_records
from .report import format_value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``compare`` options to ``parser``."""
    parser.add_argument("baseline", metavar="BASELINE", help="leaderboard JSON file, or a run folder")
    parser.add_argument("current", metavar="CURRENT", help="leaderboard JSON file, or a run folder")
    parser.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC=ABS[,...]",
        help="absolute tolerance per metric in paper units, e.g. IoU=0.5,MAE=1; '*=X' for all (default 0)",
    )


def parse_tolerances(values: Sequence[str]) -> dict[str, float]:
    """``["IoU=0.5,MAE=1", "SR=2"]`` -> ``{"IoU": 0.5, "MAE": 1.0, "SR": 2.0}`` (split on the last ``=``).

    Raises:
        ValueError: an item without ``=`` or with a non-numeric value.
    """
    out: dict[str, float] = {}
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, number = item.rpartition("=")
            if not sep or not name:
                raise ValueError(f"--tolerance item {item!r} must look like METRIC=ABS, e.g. IoU=0.5")
            try:
                out[name.strip()] = float(number)
            except ValueError:
                raise ValueError(f"--tolerance item {item!r}: {number!r} is not a number") from None
    return out


def load_result(path: str | Path) -> dict[str, Any]:
    """A leaderboard result from a ``leaderboard.json`` file, or built from a run folder / samples file
    (``allow_demo=True``, other options at their defaults).

    Raises:
        RecordError: unreadable or non-leaderboard JSON, or bad records.
    """
    path = Path(path)
    if path.is_dir() or path.name.endswith(".jsonl"):
        return build_leaderboard(load_records([path]), allow_demo=True)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: no such file or folder") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: not a readable leaderboard JSON ({exc})") from None
    if not isinstance(result, dict) or not any(k in result for k in ("detection", "tl", "ad")):
        raise RecordError(f"{path}: not a leaderboard JSON (no 'detection', 'tl' or 'ad' key)")
    return result


def render_differences(differences: Sequence[dict[str, Any]]) -> str:
    """Aligned table of every difference whose status is not ``same``."""
    columns = ["table", "model", "group", "metric", "baseline", "current", "diff", "tolerance", "status"]
    shown = [d for d in differences if d["status"] != "same"]
    if not shown:
        return "no differences\n"
    body = [
        [str(d[c]) if c in ("table", "model", "group", "status") else format_value(d[c], 3) for c in columns]
        for d in shown
    ]
    widths = [max(len(c), *(len(row[j]) for row in body)) for j, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Run the subcommand: 0 = no regression, 1 = a regression beyond tolerance, 2 = input error."""
    try:
        tolerances = parse_tolerances(args.tolerance)
        baseline = load_result(args.baseline)
        current = load_result(args.current)
        differences, regressed = compare(baseline, current, tolerances)
    except (RecordError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render_differences(differences))
    count = sum(1 for d in differences if d["status"] in ("regression", "missing"))
    print(f"{count} regression(s) beyond tolerance" if regressed else "no regression beyond tolerance")
    return 1 if regressed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m medvision_metrics.compare_cli BASELINE CURRENT``."""
    parser = argparse.ArgumentParser(prog="medvision-eval compare", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
