"""Benchmark: `medvision-eval view` on 30,000 synthetic records, and the page with 30,000 rows in Chromium.

The records are real ones: `medvision_random` and `medvision_prior` are run once on `medvision_demo` (261
samples each), then their samples lines are copied under many synthetic adapter names
(`medvision_bench_NNN`, half from each baseline) until there are `--records` lines, one samples file per
model and subtask. This is the many-models case (every model answers the same phantom samples, so the
default selection renders each selected sample once). The builds run the real console script in a
subprocess (median of `--repeats`): `--images none` and the default image budget.

Then, when /usr/bin/chromium and playwright are present, the built page is opened from file:// and the
time to the first table rows, to a model filter, to a sort by IoU and to a detail view are printed.

Run: `.venv/bin/python benchmarks/bench_viewer.py [--records 30000] [--repeats 3]`. Not collected by pytest.
Goals (issue 12): <= 30 s without images, <= 120 s with the default budget, on the project's 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOALS = {"none": 30.0, "default": 120.0}
BIN = Path(sys.executable).parent


def baseline_runs(folder: Path) -> dict[str, Path]:
    """Run both baselines on the demo once (the real CLI)."""
    out = {}
    for model in ("random", "prior"):
        target = folder / model
        cmd = [str(BIN / "medvision-eval"), "run", "--model", f"medvision_{model}", "--tasks", "medvision_demo",
               "--output_path", str(target), "--log_samples", "--verbosity", "ERROR"]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)
        out[model] = target
    return out


def synthesize(runs: dict[str, Path], folder: Path, records: int) -> int:
    """Copy the baselines' samples lines under synthetic model names until `records` lines exist."""
    per_model = {}
    for model, run in runs.items():
        lines = {}
        for path in sorted(run.rglob("*_samples_*.jsonl")):
            task = path.name.split("_samples_", 1)[1].removesuffix(".jsonl")
            lines[task] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        per_model[model] = lines
    written, index = 0, 0
    folder.mkdir(parents=True, exist_ok=True)
    while written < records:
        source = per_model["random" if index % 2 == 0 else "prior"]
        adapter = f"medvision_bench_{index:03d}"
        for task, items in source.items():
            if written >= records:
                break
            take = items[: records - written]
            with open(folder / f"20250101_{index:06d}_samples_{task}.jsonl", "w", encoding="utf-8") as fh:
                for item in take:
                    item = json.loads(json.dumps(item))
                    item["mv_record"]["model"] = dict(item["mv_record"]["model"], adapter=adapter)
                    fh.write(json.dumps(item) + "\n")
            written += len(take)
        index += 1
    return written


def time_build(samples: Path, out: Path, images: str, repeats: int) -> tuple[float, str]:
    times, last = [], ""
    for _ in range(repeats):
        cmd = [str(BIN / "medvision-eval"), "view", str(samples), "--out", str(out), "--images", images, "--force"]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise SystemExit(f"view failed: {proc.stderr[-2000:]}")
        last = proc.stderr.strip().splitlines()[-1]
    return statistics.median(times), last


def time_page(out: Path) -> dict[str, float] | None:
    """Seconds to first rows, a filter, a sort and a detail view in headless Chromium; None without one."""
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not chromium.is_file():
        return None
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"]  # fmt: skip
    figures = {}
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=str(chromium), headless=True, args=args)
        page = context.new_page()
        started = time.perf_counter()
        page.goto((out / "index.html").resolve().as_uri())
        page.wait_for_selector("#rows tr", timeout=120_000)
        figures["load_to_first_rows_s"] = time.perf_counter() - started
        figures["rows_total"] = float(page.locator("#count").get_attribute("data-total"))
        model = page.locator("#f-model option").nth(2).get_attribute("value")
        started = time.perf_counter()
        page.select_option("#f-model", model)
        page.wait_for_function("document.getElementById('count').dataset.shown !== document.getElementById('count')"
                               ".dataset.total")  # fmt: skip
        figures["filter_s"] = time.perf_counter() - started
        page.select_option("#f-model", "")
        started = time.perf_counter()
        page.locator("th[data-key='iou']").click()
        page.wait_for_selector("th.sorted-asc")
        figures["sort_30k_by_iou_s"] = time.perf_counter() - started
        started = time.perf_counter()
        page.locator("#rows tr").nth(5).click()
        page.wait_for_selector(".card.current canvas[data-ready]")
        figures["detail_s"] = time.perf_counter() - started
        context.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as tmp:
        base = Path(tmp)
        os.environ.setdefault("MEDVISION_CACHE_DIR", str(base / "cache"))
        runs = baseline_runs(base / "runs")
        count = synthesize(runs, base / "samples", args.records)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {count} records")
        for images in ("none", "default"):
            option = "none" if images == "none" else "5"
            median, summary = time_build(base / "samples", base / "viewer", option, args.repeats)
            verdict = "ok" if median <= GOALS[images] else "OVER GOAL"
            goal = GOALS[images]
            print(f"build --images {option:>4}: median {median:6.1f} s of {args.repeats} (goal <= {goal:.0f} s, "
                  f"{verdict}); {summary}")  # fmt: skip
        size = sum(p.stat().st_size for p in (base / "viewer").rglob("*") if p.is_file())
        print(f"viewer folder: {size / 1e6:.1f} MB")
        figures = time_page(base / "viewer")
        if figures is None:
            print("page: skipped (needs /usr/bin/chromium and playwright)")
        else:
            shown = [f"{k} {v:.2f}" if k.endswith("_s") else f"{k} {v:.0f}" for k, v in figures.items()]
            print("page: " + ", ".join(shown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
