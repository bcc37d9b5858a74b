"""Our part of lmms-eval's `*_results.json`: no stray `mv_record` entries, no NaN or Infinity.

lmms-eval turns every key `process_results` returns into a result entry, so the per-sample record `mv_record`
(meant for the samples file only) shows up as `"mv_record,none": []` and `"mv_record_stderr,none": []` in each
MedVision subtask. lmms-eval also writes a NaN or infinite aggregate (e.g. `mae` with no successful parse) as the
bare tokens `NaN`/`Infinity`, which strict JSON readers reject. `clean_results` drops those entries and writes
each non-finite MedVision metric as `null`, with its spelling (`"nan"`, `"inf"`, `"-inf"`) under
`medvision_nonfinite[task][metric]` at the top level of the results. It runs on the dict `simple_evaluate`
returns (task hook) and again on the written file (`medvision-eval run`), so both routes give the same file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

RECORD_KEY = "mv_record"
FLAGS_KEY = "medvision_nonfinite"


def _ours(task: str) -> bool:
    return task.startswith("medvision")


def _spelling(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def clean_results(results: dict[str, Any]) -> dict[str, Any]:
    """Clean `results` in place (see the module doc) and return it."""
    flags: dict[str, dict[str, str]] = dict(results.get(FLAGS_KEY) or {})
    for section in ("results", "groups"):
        tasks = results.get(section)
        if not isinstance(tasks, dict):
            continue
        for task, metrics in tasks.items():
            if not _ours(str(task)) or not isinstance(metrics, dict):
                continue
            for key in list(metrics):
                name = str(key).split(",", 1)[0]
                if name == RECORD_KEY or name.startswith(RECORD_KEY + "_stderr"):
                    del metrics[key]
                    continue
                value = metrics[key]
                if isinstance(value, float) and not math.isfinite(value):
                    flags.setdefault(str(task), {})[str(key)] = _spelling(value)
                    metrics[key] = None
    if flags:
        results[FLAGS_KEY] = flags
    return results


def clean_results_file(path: Path) -> bool:
    """Rewrite one `*_results.json` when cleaning changes it; returns True when it did."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)  # Python's reader accepts NaN/Infinity
    if not isinstance(data, dict):
        return False
    before = json.dumps(data, sort_keys=True)
    clean_results(data)
    if json.dumps(data, sort_keys=True) == before:
        return False
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    return True
