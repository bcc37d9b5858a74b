"""Plots of a leaderboard result: the per-label figure (paper Fig. 3) and the box-size plot (§6.6).

matplotlib is optional: it is imported inside the plotting functions (never at package import), and a
missing matplotlib raises ``ImportError`` saying ``pip install matplotlib``. Figures are drawn on a
``matplotlib.figure.Figure`` (no pyplot, no global state) and saved by extension: ``.png``, ``.svg`` or
``.pdf``.

Per-label figure, one colour per model (a fixed 20-colour cycle, so 13 models stay distinct):

* (a) detection Recall, Precision and F1 (%) per region, the regions of Table 2's rows (anatomy first, then
  tumour/lesion, each by sample count); all regions when none qualifies;
* (b) T/L MRE (%) per label of Table 3's row, log scale;
* (c) A/D MRE (%) per sub-task label (Ceph distance, Ceph angle, FeTA24 distance), log scale.

With ``--ci`` the bars carry the bootstrap intervals as error bars. docs/reference.md §9 Q14: the paper's exact bar
subset and order are not recoverable; this figure plots every qualifying region and label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .report import model_display_name

FIGURE_FORMATS: tuple[str, ...] = ("png", "svg", "pdf")
PNG_DPI = 110
# tab10, then black and high-contrast extras (Trubetskoy's list): 20 colours, the first 13 easy to tell apart
MODEL_COLOURS: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#000000", "#ffe119", "#469990", "#f032e6", "#800000", "#000075", "#aaffc3", "#9a6324", "#fabed4", "#dcbeff",
)  # fmt: skip
LOG_FLOOR_PCT = 0.1
DETECTION_PANELS: tuple[tuple[str, str], ...] = (("R", "Recall"), ("P", "Precision"), ("F1", "F1"))
MATPLOTLIB_HINT = "pip install matplotlib"


def check_figure_path(path: str | Path) -> Path:
    """``path`` if its extension is one of :data:`FIGURE_FORMATS`.

    Raises:
        ValueError: any other extension.
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FIGURE_FORMATS:
        raise ValueError(
            f"{path}: unsupported figure format {path.suffix or '(none)'!r}; use one of "
            f"{', '.join('.' + f for f in FIGURE_FORMATS)}"
        )
    return path


def require_matplotlib() -> None:
    """Import matplotlib or explain how to install it.

    Raises:
        ImportError: matplotlib is not installed; the message says ``pip install matplotlib``.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            f"the figure needs matplotlib, which is not installed: {MATPLOTLIB_HINT} "
            "(into the environment of medvision-eval)"
        ) from None


def _new_figure(width: float, height: float) -> Any:
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(figure: Any, path: Path) -> Path:
    import matplotlib

    path.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context({"svg.hashsalt": "medvision", "svg.fonttype": "none"}):
        metadata = {"Date": None} if path.suffix.lower() in (".svg", ".pdf") else None
        figure.savefig(path, dpi=PNG_DPI, metadata=metadata)
    return path


def model_colour(index: int) -> str:
    """Colour of the ``index``-th model (cycles after 20)."""
    return MODEL_COLOURS[index % len(MODEL_COLOURS)]


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _models(result: Mapping[str, Any]) -> list[str]:
    names = [str(m["model"]) for m in result.get("models") or []]
    if names:
        return names
    details = result.get("details") or {}
    return sorted({str(d["model"]) for rows in details.values() for d in rows})


def _categories(rows: Sequence[Mapping[str, Any]], key: str, qualifies: str | None) -> tuple[list[str], bool]:
    """Category keys ordered by group then sample count; ``(keys, True)`` when the qualifying filter held."""
    chosen = [r for r in rows if qualifies is None or r.get(qualifies)]
    filtered = bool(chosen) or qualifies is None
    if not chosen:
        chosen = list(rows)
    size: dict[str, float] = {}
    group: dict[str, str] = {}
    for r in chosen:
        size[r[key]] = max(size.get(r[key], 0.0), _number(r.get("samples")))
        group.setdefault(r[key], str(r.get("group") or ""))
    order = {"anatomy": 0, "tumor_lesion": 1, "ceph_distance": 0, "ceph_angle": 1, "feta_distance": 2}
    ranked = sorted(size, key=lambda k: (order.get(group[k], 9), -size[k], k))
    return ranked, filtered


def _short_label(key: str) -> str:
    return key.replace("Ceph-Biometrics-400_", "Ceph ").replace("FeTA24_", "FeTA24 ").replace("_", " ")


def _bars(
    axis: Any,
    rows: Sequence[Mapping[str, Any]],
    key: str,
    categories: list[str],
    models: list[str],
    column: str,
    log: bool,
) -> None:
    """Grouped bars: one group per category, one bar per model; error bars from ``ci`` when present."""
    import numpy as np

    n_models = max(len(models), 1)
    width = min(0.84 / n_models, 0.3)
    lookup = {(str(r["model"]), r[key]): r for r in rows}
    x = np.arange(len(categories), dtype=float)
    top = 0.0
    bottoms: list[float] = []
    for m, model in enumerate(models):
        values, lows, highs, infinite = [], [], [], []
        for c, category in enumerate(categories):
            row = lookup.get((model, category))
            value = _number(row.get(column)) if row else math.nan
            bounds = ((row or {}).get("ci") or {}).get(column)
            if math.isinf(value):
                infinite.append(c)
                value = math.nan
            if log and value == value:
                value = max(value, LOG_FLOOR_PCT)
            values.append(value)
            if bounds and value == value and all(b is not None and math.isfinite(b) for b in bounds):
                low, high = (max(b, LOG_FLOOR_PCT) if log else b for b in bounds)
                lows.append(max(value - low, 0.0))
                highs.append(max(high - value, 0.0))
                top = max(top, high)
            else:
                lows.append(0.0)
                highs.append(0.0)
            if value == value:
                top = max(top, value)
                bottoms.append(value - lows[-1])
        offset = x - width * n_models / 2 + width * (m + 0.5)
        has_ci = any(lows) or any(highs)
        axis.bar(
            offset,
            values,
            width=width,
            color=model_colour(m),
            label=model,
            yerr=[lows, highs] if has_ci else None,
            error_kw={"elinewidth": 0.6, "capsize": 0, "ecolor": "#333333"},
            linewidth=0,
        )
        for c in infinite:
            axis.annotate("inf", (offset[c], 1.0), xycoords=("data", "axes fraction"), ha="center", va="top",
                          fontsize=6, color=model_colour(m), rotation=90)  # fmt: skip
    axis.set_xticks(x)
    axis.set_xticklabels([_short_label(c) for c in categories], rotation=35, ha="right", fontsize=7)
    axis.set_xlim(-0.6, len(categories) - 0.4)
    axis.grid(axis="y", linewidth=0.4, alpha=0.5)
    axis.set_axisbelow(True)
    if log:
        axis.set_yscale("log")
        positive = [b for b in bottoms if b > 0]
        floor = 10 ** math.floor(math.log10(min(positive) / 2.0)) if positive else LOG_FLOOR_PCT
        axis.set_ylim(max(floor, LOG_FLOOR_PCT), max(top * 2.0, 10.0))
    else:
        axis.set_ylim(0, 100 if top <= 100 else top * 1.05)
    axis.tick_params(axis="y", labelsize=7)
    group_of = {r[key]: str(r.get("group")) for r in rows}
    groups = [group_of.get(c, "") for c in categories]
    for c in range(1, len(categories)):
        changed = groups[c] != groups[c - 1]
        axis.axvline(c - 0.5, color="#555555" if changed else "#dddddd", linewidth=1.0 if changed else 0.5, zorder=0)


def _empty(axis: Any, text: str) -> None:
    axis.text(0.5, 0.5, text, ha="center", va="center", transform=axis.transAxes, fontsize=9, color="#666666")
    axis.set_xticks([])
    axis.set_yticks([])


def write_per_label_figure(result: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Draw the per-label figure (module docstring) of a leaderboard result into ``path``.

    Args:
        result: the dict of ``build_leaderboard`` (or a loaded ``leaderboard.json``); reads ``details`` and
            ``models``.
        path: ``.png``, ``.svg`` or ``.pdf``.
        title: figure title (default: names the models count).

    Raises:
        ValueError: unsupported extension.
        ImportError: matplotlib missing (``pip install matplotlib``).
    """
    path = check_figure_path(path)
    details = result.get("details") or {}
    models = _models(result)
    regions = details.get("detection_regions") or []
    tl_labels = details.get("tl_labels") or []
    ad_labels = details.get("ad_labels") or []
    region_keys, regions_ok = _categories(regions, "region", "in_row")
    tl_keys, tl_ok = _categories(tl_labels, "label", "in_row")
    ad_keys, _ = _categories(ad_labels, "label", None)
    widest = max(len(region_keys), len(tl_keys), len(ad_keys), 1)
    per_category = max(0.45, 0.075 * max(len(models), 1) + 0.15)
    width = min(max(2.5 + widest * per_category, 9.0), 40.0)
    figure = _new_figure(width, 2.1 * 3 + 2.6 * 2 + 3.2 + 0.2 * math.ceil(max(len(models), 1) / 7))
    legend_rows = math.ceil(max(len(models), 1) / 7)
    grid = figure.add_gridspec(4, 1, height_ratios=[0.25 + 0.2 * legend_rows, 3 * 2.1 + 0.9, 2.6 + 0.9, 2.6 + 1.2])
    detection_axes = grid[1].subgridspec(3, 1).subplots(sharex=True)
    for axis, (column, name) in zip(detection_axes, DETECTION_PANELS):
        if region_keys:
            _bars(axis, regions, "region", region_keys, models, column, log=False)
        else:
            _empty(axis, "no detection records")
        axis.set_ylabel(f"{name} (%)", fontsize=8)
    scope = "regions of Table 2's rows" if regions_ok else "all regions (none meets the Table 2 rules)"
    detection_axes[0].set_title(f"(a) Detection recall, precision and F1 per region, {scope}", fontsize=9, loc="left")
    for axis in detection_axes[:-1]:
        axis.tick_params(axis="x", labelbottom=False)
    for cell, keys, rows, label, ok, empty in (
        (grid[2], tl_keys, tl_labels, "(b) T/L MRE per label", tl_ok, "no T/L records"),
        (grid[3], ad_keys, ad_labels, "(c) A/D MRE per sub-task label", True, "no A/D records"),
    ):
        axis = figure.add_subplot(cell)
        if keys:
            _bars(axis, rows, "label", keys, models, "MRE", log=True)
        else:
            _empty(axis, empty)
        scope = "" if ok else " (no label in Table 3's row: all labels)"
        axis.set_title(f"{label}{scope}, log scale", fontsize=9, loc="left")
        axis.set_ylabel("MRE (%)", fontsize=8)
    legend_axis = figure.add_subplot(grid[0])
    legend_axis.axis("off")
    handles = [_legend_patch(model_colour(m), model_display_name(model)) for m, model in enumerate(models)]
    legend_axis.legend(
        handles=handles, loc="center", ncol=min(len(models), 7) or 1, fontsize=8, frameon=False,
        handlelength=1.2, columnspacing=1.2,
    )  # fmt: skip
    ci = result.get("ci")
    suffix = f"; error bars: {ci['level'] * 100:g}% bootstrap intervals over volumes" if ci else ""
    kinds = {kind for m in result.get("models") or [] for kind in m.get("data_root_kinds") or []}
    if "demo" in kinds:
        suffix += "; demo (phantom) data root: not benchmark numbers"
    figure.suptitle(title or f"MedVision per-region / per-label results ({len(models)} models){suffix}", fontsize=11)
    return _save(figure, path)


def _legend_patch(colour: str, label: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(facecolor=colour, label=label)


def write_boxsize_plot(boxsize: Mapping[str, Any], path: str | Path) -> Path:
    """IoU and F1 (%) per box-size bin for each model (solid) and the random-box reference (dashed black),
    with the number of GT samples per bin below.

    Raises:
        ValueError: unsupported extension.
        ImportError: matplotlib missing (``pip install matplotlib``).
    """
    path = check_figure_path(path)
    labels = list(boxsize["bins"])
    rows = list(boxsize["rows"])
    models = sorted({r["model"] for r in rows if r["source"] == "measured"})
    figure = _new_figure(10.0, 8.0)
    axes = figure.subplots(3, 1, sharex=True, height_ratios=[3, 3, 1.4])
    for axis, column in zip(axes[:2], ("IoU", "F1")):
        for m, model in enumerate(models):
            mine = [r for r in rows if r["model"] == model and r["source"] == "measured"]
            axis.plot([r["bin_index"] for r in mine], [_number(r[column]) for r in mine], marker="o", markersize=3,
                      linewidth=1.2, color=model_colour(m), label=model)  # fmt: skip
        reference = [r for r in rows if r["source"] != "measured"]
        label = f"random box ({boxsize['draws']} draws, seed {boxsize['seed']})"
        axis.plot([r["bin_index"] for r in reference], [_number(r[column]) for r in reference], linestyle="--",
                  color="black", linewidth=1.2, label=label)  # fmt: skip
        axis.set_ylabel(f"{column} (%)", fontsize=8)
        axis.set_ylim(0, 100)
        axis.grid(linewidth=0.4, alpha=0.5)
        axis.tick_params(labelsize=7)
    counts = {r["bin_index"]: r["samples"] for r in rows if r["source"] != "measured"}
    axes[2].bar(list(counts), list(counts.values()), color="#999999", width=0.7)
    axes[2].set_ylabel("GT samples", fontsize=8)
    axes[2].tick_params(labelsize=7)
    axes[2].set_xticks(range(len(labels)))
    axes[2].set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    axes[2].set_xlabel("GT box area / image area", fontsize=8)
    axes[0].set_title("Detection by GT box size (docs/reference.md §6.6)", fontsize=10, loc="left")
    axes[0].legend(fontsize=7, ncol=min(len(models) + 1, 4), frameon=False)
    return _save(figure, path)
