"""MedVision metrics: answer parsing, per-sample scores, reducers, label keys and the leaderboard.

Pure numpy/Python; never imports lmms-eval, nibabel, torch or ``medvision_tasks``. The optional plots
(``medvision_metrics.figure``) import matplotlib only when a figure is drawn.
"""

from __future__ import annotations

from .boxsize import boxsize_analysis
from .compare import compare
from .errors import RecordError
from .labels import ad_label_key, is_excluded_region, is_tumor_lesion_region, region_key, tl_label_key
from .leaderboard import build_leaderboard
from .parse import PARSE_MODES, parse
from .records import load_records
from .reduce import aggregate_detection, aggregate_measure, reduce_metric
from .reference import load_paper_table, model_key_for
from .report import render
from .scores import detection_target, score_ad, score_detection, score_tl

__all__ = [
    "PARSE_MODES",
    "RecordError",
    "ad_label_key",
    "aggregate_detection",
    "aggregate_measure",
    "boxsize_analysis",
    "build_leaderboard",
    "compare",
    "detection_target",
    "is_excluded_region",
    "is_tumor_lesion_region",
    "load_paper_table",
    "load_records",
    "model_key_for",
    "parse",
    "reduce_metric",
    "region_key",
    "render",
    "score_ad",
    "score_detection",
    "score_tl",
    "tl_label_key",
]
