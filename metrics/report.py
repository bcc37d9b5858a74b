"""Render a leaderboard result (from :func:`medvision_metrics.leaderboard.build_leaderboard`) as text.

Formats: ``text`` (aligned terminal tables), ``md``, ``csv``, ``latex`` (booktabs) and ``json``. Values are
printed in the paper's units with one decimal. The best three values of each column among the *measured*
rows of one group are marked: ``¹ ² ³`` in text/md/csv, bold/underline/italic in LaTeX (dense ranking on
the printed values; columns with fewer than two values are not marked).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .reference import PAPER_COLUMNS, PAPER_HEADLINE_COUNTS, load_paper_table

FORMATS: tuple[str, ...] = ("text", "md", "csv", "latex", "json")
HIGHER_IS_BETTER: tuple[str, ...] = (
    "R",
    "P",
    "F1",
    "IoU",
    "SR",
    "IoU>0.5",
    "F1>0.5",
    "MRE<0.1",
    "MRE<0.2",
    "MRE<0.3",
)
LOWER_IS_BETTER: tuple[str, ...] = ("MAE", "MRE")
DETECTION_METRICS: tuple[str, ...] = ("R", "P", "F1", "IoU", "SR", "IoU>0.5", "F1>0.5")
MEASURE_METRICS: tuple[str, ...] = ("MAE", "MRE", "SR", "MRE<0.1")
MEASURE_DETAIL_METRICS: tuple[str, ...] = ("MAE", "MRE", "SR", "MRE<0.1", "MRE<0.2", "MRE<0.3")
TABLES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("detection", "Table 2 - detection", "regions", DETECTION_METRICS),
    ("tl", "Table 3 - T/L size", "labels", MEASURE_METRICS),
    ("ad", "Table 4 - A/D", "labels", MEASURE_METRICS),
)
UNITS_NOTE: dict[str, str] = {
    "detection": "all columns in %",
    "tl": "MAE in mm; MRE, SR, MRE<0.1 in %",
    "ad": "MAE in mm (distances) or degrees (angles); MRE, SR, MRE<0.1 in %",
}
SUPERSCRIPTS: dict[int, str] = {1: "¹", 2: "²", 3: "³"}
LATEX_MARKS: dict[int, str] = {1: "\\textbf{%s}", 2: "\\underline{%s}", 3: "\\textit{%s}"}
CSV_FILES: dict[str, str] = {
    "detection": "table2_detection.csv",
    "tl": "table3_tl.csv",
    "ad": "table4_ad.csv",
}


@dataclass
class _Section:
    title: str
    columns: list[str]
    numeric: list[bool]
    cells: list[list[str]]
    ranks: list[list[int | None]]
    notes: list[str] = field(default_factory=list)


def format_value(value: Any, decimals: int = 1) -> str:
    """One cell: ``-`` for None/NaN, ``inf`` for infinities, integers as is, floats with ``decimals``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{decimals}f}"
    return str(value)


def _ranks(rows: Sequence[Mapping[str, Any]], column: str, group_key: str) -> list[int | None]:
    """Dense rank (1 = best) of each measured row within its group, on values rounded for printing."""
    out: list[int | None] = [None] * len(rows)
    if column not in HIGHER_IS_BETTER and column not in LOWER_IS_BETTER:
        return out
    higher = column in HIGHER_IS_BETTER
    groups: dict[Any, list[int]] = {}
    for i, row in enumerate(rows):
        value = row.get(column)
        if row.get("source", "measured") != "measured" or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        groups.setdefault(row.get(group_key), []).append(i)
    for members in groups.values():
        rounded = {
            i: (rows[i][column] if math.isinf(rows[i][column]) else round(rows[i][column], 1))
            for i in members
        }
        distinct = sorted(set(rounded.values()), reverse=higher)
        if len(members) < 2:
            continue
        for i in members:
            rank = distinct.index(rounded[i]) + 1
            out[i] = rank if rank <= 3 else None
    return out


def _section(
    title: str,
    rows: Sequence[Mapping[str, Any]],
    lead: Sequence[str],
    metrics: Sequence[str],
    ranked: bool = True,
) -> _Section:
    columns = [*lead, *metrics]
    numeric = [c in ("regions", "labels", "samples", "successes") or c in metrics for c in columns]
    rank_columns = {c: _ranks(rows, c, "group") for c in metrics} if ranked else {}
    cells = [[format_value(row.get(c)) for c in columns] for row in rows]
    ranks = [[rank_columns[c][i] if c in rank_columns else None for c in columns] for i in range(len(rows))]
    notes = []
    for row in rows:
        if row.get("note"):
            notes.append(f"{row['model']} {row['group']} ({row.get('source', 'measured')}): {row['note']}")
    return _Section(title, columns, numeric, cells, ranks, notes)


def _headline_note(table: str) -> str:
    parts = []
    for (name, group), (count, samples) in PAPER_HEADLINE_COUNTS.items():
        if name != table:
            continue
        counted = f"{count} {'regions' if table == 'detection' else 'labels'}, " if count else ""
        parts.append(f"{group} {counted}{samples} samples")
    return "paper N: " + "; ".join(parts)


def build_sections(result: Mapping[str, Any], detail: bool = False) -> list[_Section]:
    """The tables of a result as format-neutral sections (titles, columns, cells, ranks, notes); the
    per-region/per-label sections of ``detail`` carry no rank marks."""
    sections = []
    for table, title, count_column, metrics in TABLES:
        rows = result.get(table) or []
        section = _section(title, rows, ("model", "group", "source", count_column, "samples"), metrics)
        section.notes[:0] = [UNITS_NOTE[table], _headline_note(table)]
        sections.append(section)
    if detail:
        details = result.get("details") or {}
        sections.append(
            _section(
                "Per-region detection",
                details.get("detection_regions") or [],
                ("model", "region", "group", "in_row", "samples", "successes"),
                DETECTION_METRICS,
                ranked=False,
            )
        )
        sections.append(
            _section(
                "Per-label T/L",
                details.get("tl_labels") or [],
                ("model", "label", "in_row", "samples", "successes"),
                MEASURE_DETAIL_METRICS,
                ranked=False,
            )
        )
        sections.append(
            _section(
                "Per-label A/D",
                details.get("ad_labels") or [],
                ("model", "label", "group", "in_error_means", "samples", "successes"),
                MEASURE_DETAIL_METRICS,
                ranked=False,
            )
        )
        for section in sections[-3:]:
            section.notes = []
    return sections


def _marked(cell: str, rank: int | None) -> str:
    return cell + SUPERSCRIPTS[rank] if rank else cell


def _text_line(values: Sequence[str], widths: Sequence[int], numeric: Sequence[bool]) -> str:
    parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
    return "  ".join(parts).rstrip()


def _render_text(sections: list[_Section], warnings: Sequence[str]) -> str:
    blocks = []
    for s in sections:
        lines = [s.title, "=" * len(s.title)]
        if not s.cells:
            lines.append("(no rows)")
        else:
            body = [[_marked(c, r) for c, r in zip(row, ranks)] for row, ranks in zip(s.cells, s.ranks)]
            widths = [max(len(s.columns[j]), *(len(row[j]) for row in body)) for j in range(len(s.columns))]
            lines.append(_text_line(s.columns, widths, s.numeric))
            lines.append("  ".join("-" * w for w in widths))
            lines.extend(_text_line(row, widths, s.numeric) for row in body)
        lines.extend(f"  note: {n}" for n in s.notes)
        blocks.append("\n".join(lines))
    if warnings:
        blocks.append("\n".join(["warnings:", *(f"  - {w}" for w in warnings)]))
    return "\n\n".join(blocks) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _render_md(sections: list[_Section], warnings: Sequence[str]) -> str:
    blocks = []
    for s in sections:
        lines = [f"### {s.title}", ""]
        lines.append("| " + " | ".join(_md_escape(c) for c in s.columns) + " |")
        lines.append("|" + "|".join("---:" if num else "---" for num in s.numeric) + "|")
        for row, ranks in zip(s.cells, s.ranks):
            lines.append("| " + " | ".join(_md_escape(_marked(c, r)) for c, r in zip(row, ranks)) + " |")
        if s.notes:
            lines.append("")
            lines.extend(f"- {n}" for n in s.notes)
        blocks.append("\n".join(lines))
    if warnings:
        blocks.append("\n".join(["**Warnings**", "", *(f"- {w}" for w in warnings)]))
    return "\n\n".join(blocks) + "\n"


def _render_csv(sections: list[_Section]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for index, s in enumerate(sections):
        if index:
            writer.writerow([])
        writer.writerow([s.title])
        writer.writerow(s.columns)
        for row, ranks in zip(s.cells, s.ranks):
            writer.writerow([_marked(c, r) for c, r in zip(row, ranks)])
    return buffer.getvalue()


_LATEX_SPECIALS = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
    "<": "$<$",
    ">": "$>$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters (``<``/``>`` become math-mode symbols)."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def _render_latex(sections: list[_Section]) -> str:
    blocks = []
    for s in sections:
        spec = "".join("r" if num else "l" for num in s.numeric)
        lines = [
            "\\begin{table}[t]",
            "\\centering",
            f"\\caption{{{latex_escape(s.title)}}}",
            f"\\begin{{tabular}}{{{spec}}}",
            "\\toprule",
            " & ".join(latex_escape(c) for c in s.columns) + " \\\\",
            "\\midrule",
        ]
        for row, ranks in zip(s.cells, s.ranks):
            cells = [LATEX_MARKS[r] % latex_escape(c) if r else latex_escape(c) for c, r in zip(row, ranks)]
            lines.append(" & ".join(cells) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        if s.notes:
            lines.append("\\par\\footnotesize " + latex_escape("; ".join(s.notes)))
        lines.append("\\end{table}")
        blocks.append("\n".join(lines))
    return "% requires \\usepackage{booktabs}\n" + "\n\n".join(blocks) + "\n"


def to_json(result: Mapping[str, Any]) -> str:
    """``json.dumps`` of the result with NaN written as ``null`` (infinities stay ``Infinity``)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, Mapping):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(result), indent=2, ensure_ascii=False) + "\n"


def render(result: Mapping[str, Any], fmt: str, detail: bool = False) -> str:
    """Render ``result`` as ``text``, ``md``, ``csv``, ``latex`` or ``json``.

    Args:
        result: the dict returned by ``build_leaderboard``.
        fmt: one of :data:`FORMATS`.
        detail: also render the per-region and per-label tables (ignored for ``json``, which holds them).

    Raises:
        ValueError: unknown ``fmt``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if fmt == "json":
        return to_json(result)
    sections = build_sections(result, detail=detail)
    warnings = list(result.get("warnings") or [])
    if fmt == "text":
        return _render_text(sections, warnings)
    if fmt == "md":
        return _render_md(sections, warnings)
    if fmt == "csv":
        return _render_csv(sections)
    return _render_latex(sections)


# ------------------------------------------------------------------------------ §8-layout CSV files
_CSV_PREFIX: dict[str, str] = {
    "anatomy": "anatomy_",
    "tumor_lesion": "tumor_lesion_",
    "tl": "",
    "ceph_distance": "ceph_distance_",
    "ceph_angle": "ceph_angle_",
    "feta_distance": "feta24_distance_",
    "ad_overall": "ad_overall_",
}
_EXTRA_DETECTION = {"F1>0.5": "f1_gt_0.5_pct"}
_AD_OVERALL_COLUMNS = {
    "MAE": "mae",
    "MRE": "mre_pct",
    "SR": "success_rate_pct",
    "MRE<0.1": "mre_lt_0.1_pct",
}


def _csv_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def table_csvs(result: Mapping[str, Any]) -> dict[str, str]:
    """The three table files (``table2_detection.csv``, ``table3_tl.csv``, ``table4_ad.csv``) in the column
    layout of the paper CSVs (§8), one line per (model, source), then extra columns: ``source``, per-group
    ``regions``/``labels`` and ``samples``, detection ``*_f1_gt_0.5_pct`` and the A/D overall line.
    Values are unrounded; empty cells mean not available."""
    out: dict[str, str] = {}
    for table, _title, count_column, _metrics in TABLES:
        header = list(load_paper_table(table)[0].keys())
        names = {str(r["model_key"]): (r["paper_name"], r["params"]) for r in load_paper_table(table)}
        groups = [g for (t, g) in PAPER_COLUMNS if t == table] + (["ad_overall"] if table == "ad" else [])
        extra = ["source"]
        for group in groups:
            prefix = _CSV_PREFIX[group]
            extra += [f"{prefix}{count_column}", f"{prefix}samples"]
            if table == "detection":
                extra.append(f"{prefix}{_EXTRA_DETECTION['F1>0.5']}")
            if group == "ad_overall":
                extra += [f"{prefix}{c}" for c in _AD_OVERALL_COLUMNS.values()]
        lines: dict[tuple[str, str], dict[str, Any]] = {}
        for row in result.get(table) or []:
            model, source, group = str(row["model"]), str(row.get("source", "measured")), row["group"]
            line = lines.setdefault((model, source), {"model_key": model, "source": source})
            if model in names:
                line["paper_name"], line["params"] = names[model]
            prefix = _CSV_PREFIX.get(group, f"{group}_")
            columns = PAPER_COLUMNS.get((table, group), {})
            for csv_column, name in columns.items():
                line[csv_column] = row.get(name)
            if group == "ad_overall":
                for name, suffix in _AD_OVERALL_COLUMNS.items():
                    line[f"{prefix}{suffix}"] = row.get(name)
            if table == "detection":
                line[f"{prefix}{_EXTRA_DETECTION['F1>0.5']}"] = row.get("F1>0.5")
            line[f"{prefix}{count_column}"] = row.get(count_column)
            line[f"{prefix}samples"] = row.get("samples")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header + extra)
        for line in lines.values():
            writer.writerow([_csv_cell(line.get(c)) for c in header + extra])
        out[CSV_FILES[table]] = buffer.getvalue()
    return out
