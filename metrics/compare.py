"""Regression gate over two leaderboard results (``medvision-eval compare``).

Rows are matched by ``(table, model, group)`` among measured rows (``source == "measured"``). Values are in
the leaderboard's paper units (percent points for R/P/F1/IoU/SR/IoU>0.5/F1>0.5/MRE<0.1 and MRE; mm or
degrees for MAE), and so are the absolute tolerances.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .options import did_you_mean
from .report import HIGHER_IS_BETTER, LOWER_IS_BETTER

TABLE_NAMES: tuple[str, ...] = ("detection", "tl", "ad")
INFO_COLUMNS: tuple[str, ...] = ("samples",)
DEFAULT_TOLERANCE_KEY = "*"
STATUSES: tuple[str, ...] = (
    "same",
    "within_tolerance",
    "improved",
    "appeared",
    "regression",
    "missing",
    "new",
)


def _measured_rows(result: Mapping[str, Any]) -> dict[tuple[str, str, str], Mapping[str, Any]]:
    rows: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for table in TABLE_NAMES:
        for row in result.get(table) or []:
            if row.get("source", "measured") == "measured":
                rows[(table, str(row["model"]), str(row["group"]))] = row
    return rows


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def check_tolerances(tolerances: Mapping[str, float]) -> dict[str, float]:
    """Validate tolerance names (metric columns, or ``*`` for all) and values (>= 0).

    Raises:
        ValueError: unknown metric (with the closest name) or a negative/non-numeric tolerance.
    """
    valid = (*HIGHER_IS_BETTER, *LOWER_IS_BETTER, DEFAULT_TOLERANCE_KEY)
    out: dict[str, float] = {}
    for name, value in tolerances.items():
        if name not in valid:
            hint = did_you_mean(name, valid)
            raise ValueError(f"unknown tolerance metric {name!r}; valid: {', '.join(valid)}.{hint}")
        tolerance = float(value)
        if math.isnan(tolerance) or tolerance < 0:
            raise ValueError(f"tolerance for {name!r} must be a number >= 0, got {value!r}")
        out[name] = tolerance
    return out


def _status(metric: str, base: float | None, cur: float | None, tolerance: float) -> tuple[str, float | None]:
    if base is None and cur is None:
        return "same", None
    if base is None:
        return "appeared", None
    if cur is None:
        return "regression", None
    if base == cur:
        return "same", 0.0
    diff = cur - base
    if math.isnan(diff):  # inf - inf of the same sign is handled above; opposite signs cannot occur
        return "regression", diff
    worse = -diff if metric in HIGHER_IS_BETTER else diff
    if worse > tolerance:
        return "regression", diff
    return ("within_tolerance" if worse > 0 else "improved"), diff


def compare(
    baseline: Mapping[str, Any], current: Mapping[str, Any], tolerances: Mapping[str, float]
) -> tuple[list[dict[str, Any]], bool]:
    """Compare two leaderboard results metric by metric.

    A higher-is-better metric that drops, or a lower-is-better metric (MAE, MRE) that rises, by more than its
    absolute tolerance is a regression; so is a value that becomes ``None`` and a baseline row missing from
    ``current``. ``samples`` is reported but never a regression.

    Args:
        baseline, current: dicts as returned by ``build_leaderboard`` (or read from ``leaderboard.json``).
        tolerances: ``{metric: absolute tolerance}``; ``"*"`` sets the default (otherwise 0).

    Returns:
        ``(differences, regressed)``: one dict per compared (table, model, group, metric) with ``baseline``,
        ``current``, ``diff`` (current - baseline), ``tolerance`` and ``status`` (one of :data:`STATUSES`),
        plus one per missing or new row (``metric`` None); ``regressed`` is True when any status is
        ``regression`` or ``missing``.

    Raises:
        ValueError: invalid tolerances.
    """
    tol = check_tolerances(tolerances)
    default = tol.get(DEFAULT_TOLERANCE_KEY, 0.0)
    base_rows, cur_rows = _measured_rows(baseline), _measured_rows(current)
    differences: list[dict[str, Any]] = []
    for key, base_row in base_rows.items():
        table, model, group = key
        entry = {"table": table, "model": model, "group": group}
        cur_row = cur_rows.get(key)
        if cur_row is None:
            differences.append(
                {**entry, "metric": None, "baseline": None, "current": None, "diff": None}
                | {"tolerance": None, "status": "missing"}
            )
            continue
        for metric in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER, *INFO_COLUMNS):
            if metric not in base_row and metric not in cur_row:
                continue
            base, cur = _number(base_row.get(metric)), _number(cur_row.get(metric))
            if metric in INFO_COLUMNS:
                diff = None if base is None or cur is None else cur - base
                status, tolerance = ("same" if base == cur else "changed"), None
            else:
                tolerance = tol.get(metric, default)
                status, diff = _status(metric, base, cur, tolerance)
            differences.append(
                {**entry, "metric": metric, "baseline": base, "current": cur, "diff": diff}
                | {"tolerance": tolerance, "status": status}
            )
    for key in cur_rows:
        if key not in base_rows:
            table, model, group = key
            differences.append(
                {"table": table, "model": model, "group": group, "metric": None, "baseline": None}
                | {"current": None, "diff": None, "tolerance": None, "status": "new"}
            )
    regressed = any(d["status"] in ("regression", "missing") for d in differences)
    return differences, regressed
