"""Benchmark: the Spacing sensitivity table (``medvision_metrics.spacing.spacing_table``) with ``--ci``.

Synthetic T/L records: N base samples in volumes of 20 slices, each answered at k = 0.5 and 2 with a random
elasticity in [0, 1]; times the table with 1000 bootstrap replicates and without intervals (median of 3).

Run: ``.venv/bin/python benchmarks/bench_spacing.py [--samples 2000] [--repeats 3]``. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from medvision_metrics.spacing import Item, spacing_table

SAMPLE = {"success": True, "excluded": False, "metrics": {"mre": 0.1}, "parse": "last_k"}


def synthetic(samples: int, seed: int = 0) -> tuple[list[Item], list[Item]]:
    """(variants, bases) of one model: a base record and two variant records per sample."""
    rng = random.Random(seed)
    bases, variants = [], []
    for row in range(samples):
        common = {
            "family": "tl", "config": "C", "image_file_rel": f"img{row // 20}.nii.gz", "slice_dim": 2,
            "slice_idx": row, "dataset": "D", "settings_id": "s", "metric_type": None, "row": row,
        }  # fmt: skip
        a1 = rng.uniform(5, 60)
        bases.append(Item(dict(common, task="base", response=f"{a1:.2f}, {a1 / 2:.2f}"), SAMPLE, "bench", "m"))
        for k in (0.5, 2.0):
            ak = a1 * k ** rng.uniform(0, 1)
            spacing = {"k": k, "base_task": "base"}
            record = dict(common, task=f"v{k}", response=f"{ak:.2f}, {ak / 2:.2f}", spacing=spacing)
            variants.append(Item(record, SAMPLE, "bench", "m"))
    return variants, bases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    variants, bases = synthetic(args.samples)
    for label, ci in (("--ci 0.95 (1000 replicates)", 0.95), ("no intervals", None)):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            spacing_table(variants, bases, ci=ci, ci_iterations=1000)
            times.append(time.perf_counter() - start)
        print(f"{len(variants)} pairs, {args.samples // 20} volumes, {label}: median {statistics.median(times):.3f} s")


if __name__ == "__main__":
    main()
