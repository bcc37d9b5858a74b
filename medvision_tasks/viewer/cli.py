"""`medvision-eval view RUN_OR_SAMPLES... [--out DIR] [--serve [--port P]] [--images N|all|none] [--force]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .build import DEFAULT_RANDOM, Builder, OutputFolderError, build_viewer, parse_images_option
from .load import ViewerInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", metavar="RUN_OR_SAMPLES", help="run folders (--output_path) or samples files"
    )
    parser.add_argument("--out", metavar="DIR", help="viewer folder (default: <first run>/viewer)")
    parser.add_argument(
        "--images",
        default=str(DEFAULT_RANDOM),
        metavar="N|all|none",
        help=f"images to pre-render: N random samples per subtask plus each model's 3 worst, 3 best and 3 failed "
        f"parses (default {DEFAULT_RANDOM}), all, or none",
    )
    parser.add_argument("--data-root", metavar="DIR", help="data root for real runs (default: MEDVISION_DATA_DIR)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out folder that is not a viewer")
    parser.add_argument(
        "--serve", action="store_true", help="serve the viewer on 127.0.0.1, rendering images on demand"
    )
    parser.add_argument("--port", type=int, default=8765, help="port for --serve (default 8765; 0 = any free port)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random image selection (default 0)")


def run(args: argparse.Namespace) -> int:
    """Build (and optionally serve) the viewer; 2 on unusable input or output folder."""
    try:
        images = parse_images_option(args.images)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        summary = build_viewer(
            args.paths,
            args.out,
            images=images,
            force=args.force,
            data_root=Path(args.data_root).expanduser() if args.data_root else None,
            seed=args.seed,
            progress=True,
        )
    except (ViewerInputError, OutputFolderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"viewer: {summary.records} records, {summary.images} images ({summary.image_failures} unavailable), "
        f"{summary.malformed} malformed line(s) skipped, built in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    index = summary.out / "index.html"
    print(index.resolve().as_uri())
    if not args.serve:
        return 0
    from .serve import make_server

    assert summary.report is not None
    builder = Builder(summary.report, summary.out, Path(args.data_root).expanduser() if args.data_root else None)
    server = make_server(summary.out, builder, args.port)
    host, port = server.server_address[:2]
    print(f"serving http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
