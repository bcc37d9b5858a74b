"""Published reference numbers (paper Tables 2-4, docs/reference.md §8) and the adapter -> ``model_key`` mapping (§7.3).

Units are the paper's: percentages as printed; MAE in mm, or degrees for Ceph angles.
"""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"
PAPER_TABLE_FILES: dict[str, str] = {
    "detection": "paper_table2_detection.csv",
    "tl": "paper_table3_tl.csv",
    "ad": "paper_table4_ad.csv",
}
TEXT_COLUMNS: tuple[str, ...] = ("model_key", "paper_name", "params")

# (table, group) -> {csv column: leaderboard column}
PAPER_COLUMNS: dict[tuple[str, str], dict[str, str]] = {}
for _group in ("anatomy", "tumor_lesion"):
    PAPER_COLUMNS[("detection", _group)] = {
        f"{_group}_recall_pct": "R",
        f"{_group}_precision_pct": "P",
        f"{_group}_f1_pct": "F1",
        f"{_group}_iou_pct": "IoU",
        f"{_group}_success_rate_pct": "SR",
        f"{_group}_iou_gt_0.5_pct": "IoU>0.5",
    }
PAPER_COLUMNS[("tl", "tl")] = {
    "mae_mm": "MAE",
    "mre_pct": "MRE",
    "success_rate_pct": "SR",
    "mre_lt_0.1_pct": "MRE<0.1",
}
for _group, _prefix, _unit in (
    ("ceph_distance", "ceph_distance", "mm"),
    ("ceph_angle", "ceph_angle", "deg"),
    ("feta_distance", "feta24_distance", "mm"),
):
    PAPER_COLUMNS[("ad", _group)] = {
        f"{_prefix}_mae_{_unit}": "MAE",
        f"{_prefix}_mre_pct": "MRE",
        f"{_prefix}_success_rate_pct": "SR",
        f"{_prefix}_mre_lt_0.1_pct": "MRE<0.1",
    }

# (table, group) -> (regions or labels, samples) as stated by the paper (§6.5, §8); T/L "2K" is approximate.
PAPER_HEADLINE_COUNTS: dict[tuple[str, str], tuple[int | None, int]] = {
    ("detection", "anatomy"): (18, 13400),
    ("detection", "tumor_lesion"): (8, 8500),
    ("tl", "tl"): (None, 2000),
    ("ad", "ceph_distance"): (None, 1000),
    ("ad", "ceph_angle"): (None, 957),
    ("ad", "feta_distance"): (None, 100),
}

PAPER_ROW_NOTES: dict[str, str] = {
    "medgemma_27b": (
        "the v1 driver loads MedGemma-4B whatever checkpoint is passed; this paper row may come from 4B "
        "(docs/reference.md §9 Q6)"
    ),
}

# adapter -> {"default": model_key, "checkpoints": {lower-cased checkpoint basename: model_key}}; generated from
# the model profiles (medvision_adapters/profiles.py) by `python -m medvision_adapters.profiles --write`.
MODEL_KEYS_FILE = DATA_DIR / "model_keys.json"
BASELINE_MODEL_KEYS: dict[str, str] = {
    "medvision_random": "random",
    "medvision_prior": "prior",
    "medvision_replay": "replay",
}


@functools.lru_cache(maxsize=1)
def _adapter_checkpoints() -> dict[str, dict[str, Any]]:
    return json.loads(MODEL_KEYS_FILE.read_text(encoding="utf-8"))["adapters"]


def checkpoint_basename(pretrained: str) -> str:
    """Last component of an HF id or a local folder.

    Example: ``checkpoint_basename("Qwen/Qwen2.5-VL-32B-Instruct") == "Qwen2.5-VL-32B-Instruct"``.
    """
    return pretrained.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def model_key_for(adapter: str, pretrained: str | None) -> str:
    """Leaderboard model identity for an adapter and its checkpoint (docs/reference.md §7.3).

    * A plugin adapter with no ``pretrained`` or its paper checkpoint (HF id or a local folder of the same
      name, case-insensitive) gives the paper's ``model_key``; known alternatives too (MedGemma 27B,
      Qwen2.5-VL 32B).
    * The baselines ``medvision_random``, ``medvision_prior``, ``medvision_replay`` give ``random``,
      ``prior``, ``replay``.
    * Anything else gives ``"<adapter>"`` (no ``pretrained``) or ``"<adapter>:<checkpoint basename>"``.

    Example: ``model_key_for("medvision_medgemma", "google/medgemma-27b-it") == "medgemma_27b"``.
    """
    if adapter in BASELINE_MODEL_KEYS:
        return BASELINE_MODEL_KEYS[adapter]
    basename = checkpoint_basename(pretrained) if pretrained else ""
    known = _adapter_checkpoints().get(adapter)
    if known is not None:
        if not basename:
            return str(known["default"])
        if basename.lower() in known["checkpoints"]:
            return str(known["checkpoints"][basename.lower()])
    return f"{adapter}:{basename}" if basename else adapter


def _cell(column: str, text: str) -> str | float | None:
    if column in TEXT_COLUMNS:
        return text
    if text.strip() == "":
        return None
    return float(text)


@functools.cache
def _load_table(table: str) -> tuple[dict[str, Any], ...]:
    path = DATA_DIR / PAPER_TABLE_FILES[table]
    with path.open(encoding="utf-8", newline="") as handle:
        return tuple({k: _cell(k, v) for k, v in row.items()} for row in csv.DictReader(handle))


def load_paper_table(table: str) -> list[dict[str, Any]]:
    """Rows of one paper CSV (``table`` is ``detection``, ``tl`` or ``ad``) as dicts keyed by the CSV
    header; ``model_key``, ``paper_name`` and ``params`` stay strings, the other cells are floats.

    Raises:
        ValueError: unknown ``table``.
    """
    if table not in PAPER_TABLE_FILES:
        raise ValueError(f"unknown paper table {table!r}; valid tables: {', '.join(PAPER_TABLE_FILES)}")
    return [dict(row) for row in _load_table(table)]


def paper_model_keys() -> list[str]:
    """The 13 ``model_key``s of the paper, in Table 2 order."""
    return [str(row["model_key"]) for row in load_paper_table("detection")]


def paper_rows(model_key: str) -> dict[str, list[dict[str, Any]]]:
    """Published rows of one model as leaderboard rows: ``{"detection": [...], "tl": [...], "ad": [...]}``.

    Each row has ``model``, ``group``, ``regions``/``labels``, ``samples`` (the paper's headline counts),
    the paper columns under their leaderboard names, ``source: "paper"`` and, where one applies, a ``note``.
    Unknown keys give empty lists.
    """
    out: dict[str, list[dict[str, Any]]] = {table: [] for table in PAPER_TABLE_FILES}
    for (table, group), columns in PAPER_COLUMNS.items():
        match = next((r for r in load_paper_table(table) if r["model_key"] == model_key), None)
        if match is None:
            continue
        count, samples = PAPER_HEADLINE_COUNTS[(table, group)]
        row: dict[str, Any] = {"model": model_key, "group": group}
        row["regions" if table == "detection" else "labels"] = count
        row["samples"] = samples
        for csv_column, name in columns.items():
            row[name] = match.get(csv_column)
        if table == "detection":
            row["F1>0.5"] = None
        row["source"] = "paper"
        if model_key in PAPER_ROW_NOTES:
            row["note"] = PAPER_ROW_NOTES[model_key]
        out[table].append(row)
    return out
