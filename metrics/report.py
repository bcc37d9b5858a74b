"""Render a leaderboard result (from :func:`medvision_metrics.leaderboard.build_leaderboard`) as text.

Formats: ``text`` (aligned terminal tables), ``md``, ``csv``, ``latex`` (booktabs) and ``json``. Values are
printed in the paper's units with one decimal. The best three values of each column among the *measured*
rows of one group are marked: ``¹ ² ³`` in text/md, bold/underline/italic in LaTeX (dense ranking on
the printed values; columns with fewer than two values are not marked), with a legend line. ``csv`` is plain
CSV: one header starting with ``table`` and one line per row, no marks.

``text``, ``md`` and ``csv`` print one line per (model, group, source). ``latex`` prints Tables 2-4 in the
paper's layout: one line per (model, source), the paper's column groups side by side (Anatomy |
Tumor/Lesion; Ceph distance | Ceph angle | FeTA24 distance), published lines marked "(paper)". With
``--ci`` every measured cell carries its interval: ``67.5 [63.0, 71.9]`` in text/md, ``{col}_ci_low`` and
``{col}_ci_high`` columns in csv, a ``\\scriptsize`` interval in LaTeX and ``ci`` in JSON; a ``clusters``
column gives the number of volumes behind each row.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .hygiene import strict
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


Interval = tuple[str, str] | None


@dataclass
class _Section:
    title: str
    columns: list[str]
    numeric: list[bool]
    cells: list[list[str]]
    ranks: list[list[int | None]]
    notes: list[str] = field(default_factory=list)
    intervals: list[list[Interval]] = field(default_factory=list)


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


def _interval(row: Mapping[str, Any], column: str) -> Interval:
    bounds = (row.get("ci") or {}).get(column)
    if not bounds:
        return None
    return format_value(bounds[0]), format_value(bounds[1])


def _section(
    title: str,
    rows: Sequence[Mapping[str, Any]],
    lead: Sequence[str],
    metrics: Sequence[str],
    ranked: bool = True,
) -> _Section:
    lead = list(lead)
    if any("clusters" in row for row in rows):
        lead.append("clusters")
    columns = [*lead, *metrics]
    numeric = [c in ("regions", "labels", "samples", "successes", "clusters") or c in metrics for c in columns]
    rank_columns = {c: _ranks(rows, c, "group") for c in metrics} if ranked else {}
    cells = [[format_value(row.get(c)) for c in columns] for row in rows]
    ranks = [[rank_columns[c][i] if c in rank_columns else None for c in columns] for i in range(len(rows))]
    intervals = [[_interval(row, c) if c in metrics else None for c in columns] for row in rows]
    notes = []
    for row in rows:
        if row.get("note"):
            notes.append(f"{row['model']} {row['group']} ({row.get('source', 'measured')}): {row['note']}")
    return _Section(title, columns, numeric, cells, ranks, notes, intervals)


def ci_note(result: Mapping[str, Any], clusters_column: bool = True) -> str | None:
    """One line describing the bootstrap behind the intervals, or ``None`` without ``--ci``."""
    ci = result.get("ci")
    if not ci:
        return None
    clusters = ", ".join(f"{model} {count}" for model, count in (ci.get("clusters") or {}).items())
    column = "; 'clusters' = volumes behind a row" if clusters_column else ""
    return (
        f"[low, high]: {ci['level'] * 100:g}% percentile bootstrap intervals, {ci['iterations']} resamples of "
        f"whole volumes ({ci['cluster']}), seed {ci['seed']}; volumes per model: {clusters or 'none'}{column}"
    )


def _headline_note(table: str) -> str:
    parts = []
    for (name, group), (count, samples) in PAPER_HEADLINE_COUNTS.items():
        if name != table:
            continue
        counted = f"{count} {'regions' if table == 'detection' else 'labels'}, " if count else ""
        parts.append(f"{group} {counted}{samples} samples")
    return "paper N: " + "; ".join(parts)


BOXSIZE_LEAD: tuple[str, ...] = ("bin", "model", "source", "samples")


def build_sections(result: Mapping[str, Any], detail: bool = False) -> list[_Section]:
    """The tables of a result as format-neutral sections (titles, columns, cells, ranks, intervals, notes);
    the per-region/per-label sections of ``detail`` and the box-size section carry no rank marks."""
    sections = []
    interval_note = ci_note(result)
    for table, title, count_column, metrics in TABLES:
        rows = result.get(table) or []
        section = _section(title, rows, ("model", "group", "source", count_column, "samples"), metrics)
        section.notes[:0] = [UNITS_NOTE[table], _headline_note(table)]
        if interval_note:
            section.notes.append(interval_note)
        sections.append(section)
    if result.get("spacing"):
        sections.append(spacing_section(result))
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
    boxsize = result.get("boxsize")
    if boxsize:
        section = _section(
            "Box-size analysis - detection", boxsize["rows"], BOXSIZE_LEAD, DETECTION_METRICS, ranked=False
        )
        section.notes = [
            f"{boxsize['definition']}; all columns in %; all non-excluded detection samples (no region filter)",
            f"random_box: {boxsize['draws']} uniformly random boxes per GT sample, seed {boxsize['seed']}, "
            "scores averaged over the draws",
        ]
        sections.append(section)
    return sections


SPACING_TITLE = "Spacing sensitivity"
SPACING_LEAD: tuple[str, ...] = ("model", "group", "k", "pairs", "unpaired", "unparsable", "skipped")
SPACING_E_COLUMNS: tuple[str, ...] = ("e median", "e IQR", "minor e median", "minor e IQR")


def spacing_section(result: Mapping[str, Any]) -> _Section:
    """The Spacing sensitivity table (docs/spacing-test.md) as a section: elasticities with 2 decimals."""
    spacing = result["spacing"]
    rows = spacing.get("rows") or []
    metrics = [
        "e median",
        "e IQR",
        "e in [0.5,1.5] %",
        "minor e median",
        "minor e IQR",
        *(f"MRE k={k}" for k in spacing.get("ks") or []),
        "angle |d| median",
    ]
    section = _section(SPACING_TITLE, rows, SPACING_LEAD, metrics, ranked=False)
    for j, column in enumerate(section.columns):
        section.numeric[j] = section.numeric[j] or column in SPACING_LEAD[3:]
        if column not in SPACING_E_COLUMNS:
            continue
        for i, row in enumerate(rows):
            section.cells[i][j] = format_value(row.get(column), 2)
            bounds = (row.get("ci") or {}).get(column)
            section.intervals[i][j] = (format_value(bounds[0], 2), format_value(bounds[1], 2)) if bounds else None
    section.notes = [
        spacing.get("definition", ""),
        "groups: tl = T/L major axis (minor in the minor columns), distance = A/D distances, angle = A/D angles "
        "(control: |d| = median |a_k - a_1| in degrees); MRE k=1 from the base subtasks, in %",
        "pairs: variant and base record of the same doc, model and settings_id, both parsed; unpaired: no such "
        "base record; skipped: a zero, negative or non-finite answer",
    ]
    missing = spacing.get("missing_base") or []
    if missing:
        by_model: dict[str, list[str]] = {}
        for entry in missing:
            by_model.setdefault(str(entry["model"]), []).append(str(entry["base_task"]))
        for model, tasks in by_model.items():
            section.notes.append(
                f"{model}: no base-task records to pair with; run {', '.join(sorted(set(tasks)))} with the same "
                "model and settings"
            )
    interval_note = ci_note(result)
    if interval_note and any(row.get("ci") for row in rows):
        section.notes.append(interval_note)
    return section


SPACING_CSV = "spacing_sensitivity.csv"


def spacing_csv(result: Mapping[str, Any]) -> str:
    """The Spacing sensitivity table alone, in the ``--format csv`` layout (for ``--out``)."""
    return _render_csv([spacing_section(result)])


def _marked(cell: str, rank: int | None) -> str:
    return cell + SUPERSCRIPTS[rank] if rank else cell


def _display(cell: str, rank: int | None, interval: Interval) -> str:
    text = _marked(cell, rank)
    return f"{text} [{interval[0]}, {interval[1]}]" if interval else text


def _display_rows(s: _Section) -> list[list[str]]:
    intervals = s.intervals or [[None] * len(s.columns) for _ in s.cells]
    return [
        [_display(c, r, i) for c, r, i in zip(row, ranks, bounds)]
        for row, ranks, bounds in zip(s.cells, s.ranks, intervals)
    ]


def _text_line(values: Sequence[str], widths: Sequence[int], numeric: Sequence[bool]) -> str:
    parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
    return "  ".join(parts).rstrip()


RANK_LEGEND = (
    "¹ ² ³ = best, second and third value of a column among the measured rows of one group (dense ranking on "
    "the printed values); published (paper) rows and columns with fewer than two values are not ranked"
)
LATEX_RANK_LEGEND = "bold, underlined, italic = best, second, third measured value of a column in one row group"


def _has_marks(ranks: Sequence[Sequence[int | None]]) -> bool:
    return any(rank for row in ranks for rank in row)


def _render_text(sections: list[_Section], warnings: Sequence[str]) -> str:
    blocks = []
    for s in sections:
        lines = [s.title, "=" * len(s.title)]
        if not s.cells:
            lines.append("(no rows)")
        else:
            body = _display_rows(s)
            widths = [max(len(s.columns[j]), *(len(row[j]) for row in body)) for j in range(len(s.columns))]
            lines.append(_text_line(s.columns, widths, s.numeric))
            lines.append("  ".join("-" * w for w in widths))
            lines.extend(_text_line(row, widths, s.numeric) for row in body)
        lines.extend(f"  note: {n}" for n in s.notes)
        blocks.append("\n".join(lines))
    if any(_has_marks(s.ranks) for s in sections):
        blocks.append(f"legend: {RANK_LEGEND}")
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
        for row in _display_rows(s):
            lines.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
        if s.notes:
            lines.append("")
            lines.extend(f"- {n}" for n in s.notes)
        blocks.append("\n".join(lines))
    if any(_has_marks(s.ranks) for s in sections):
        blocks.append(f"Legend: {RANK_LEGEND}.")
    if warnings:
        blocks.append("\n".join(["**Warnings**", "", *(f"- {w}" for w in warnings)]))
    return "\n\n".join(blocks) + "\n"


def _csv_columns(s: _Section) -> list[str]:
    """The section's columns, each measured column followed by its interval columns when it has any."""
    with_ci = [any(row[j] for row in s.intervals) for j in range(len(s.columns))] if s.intervals else []
    columns: list[str] = []
    for j, column in enumerate(s.columns):
        columns.append(column)
        if with_ci and with_ci[j]:
            columns += [f"{column}_ci_low", f"{column}_ci_high"]
    return columns


def _render_csv(sections: list[_Section]) -> str:
    """Plain CSV for any set of sections: one header (``table``, then every column of every section in order of
    first appearance) and one line per row, the section title in ``table``; no marks, empty = not available."""
    per_section = [_csv_columns(s) for s in sections]
    header = list(dict.fromkeys(c for columns in per_section for c in columns))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["table", *header])
    for s in sections:
        for i, row in enumerate(s.cells):
            values: dict[str, str] = {}
            for j, cell in enumerate(row):
                column = s.columns[j]
                values[column] = "" if cell == "-" else cell
                bounds = s.intervals[i][j] if s.intervals else None
                if bounds:
                    values[f"{column}_ci_low"], values[f"{column}_ci_high"] = bounds
            writer.writerow([s.title, *(values.get(c, "") for c in header)])
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


def _latex_cell(cell: str, rank: int | None, interval: Interval) -> str:
    text = LATEX_MARKS[rank] % latex_escape(cell) if rank else latex_escape(cell)
    if interval:
        text += " {\\scriptsize [" + latex_escape(interval[0]) + ", " + latex_escape(interval[1]) + "]}"
    return text


def _latex_long(s: _Section) -> str:
    """One section as a booktabs table, one line per row (details and box-size sections)."""
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
    intervals = s.intervals or [[None] * len(s.columns) for _ in s.cells]
    for row, ranks, bounds in zip(s.cells, s.ranks, intervals):
        lines.append(" & ".join(_latex_cell(c, r, i) for c, r, i in zip(row, ranks, bounds)) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if s.notes:
        lines.append("\\par\\footnotesize " + latex_escape("; ".join(s.notes)))
    lines.append("\\end{table}")
    return "\n".join(lines)


@dataclass
class PaperTable:
    """One table in the paper's layout: column groups side by side, one line per (model, source)."""

    table: str
    title: str
    groups: list[tuple[str, str]]  # (group, heading)
    metrics: dict[str, list[str]]  # group -> leaderboard columns, in the paper's order
    lines: list[tuple[str, str]] = field(default_factory=list)  # (model, source)
    cells: list[list[str]] = field(default_factory=list)  # per line: "Model" then each group's metrics
    ranks: list[list[int | None]] = field(default_factory=list)
    intervals: list[list[Interval]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """``Model`` followed by every group's metric columns (the paper's column order)."""
        return ["Model", *(c for group, _ in self.groups for c in self.metrics[group])]


PAPER_GROUP_HEADINGS: dict[str, str] = {
    "anatomy": "Anatomy",
    "tumor_lesion": "Tumor/Lesion",
    "tl": "",
    "ceph_distance": "Ceph distance",
    "ceph_angle": "Ceph angle",
    "feta_distance": "FeTA24 distance",
}
PAPER_TITLES: dict[str, str] = {
    "detection": "Table 2 - detection (%)",
    "tl": "Table 3 - T/L size",
    "ad": "Table 4 - A/D",
}


def model_display_name(model_key: str) -> str:
    """``"MedVision-V0 (7B)"`` for a paper ``model_key``; other keys unchanged."""
    for row in load_paper_table("detection"):
        if row["model_key"] == model_key:
            return f"{row['paper_name']} ({row['params']})"
    return model_key


def _count_note(table: str, rows: Sequence[Mapping[str, Any]], count_column: str) -> str:
    parts = []
    for group in dict.fromkeys(r["group"] for r in rows):
        measured = [r for r in rows if r["group"] == group and r.get("source", "measured") == "measured"]
        volumes = any("clusters" in r for r in measured)
        counts = {(r.get("samples"), r.get(count_column), r.get("clusters")) for r in measured}
        if not counts:
            continue
        if len(counts) == 1:
            samples, count, clusters = counts.pop()
            parts.append(
                f"{group} {samples} samples, {count} {count_column}" + (f", {clusters} volumes" if volumes else "")
            )
        else:
            shown = "/volumes" if volumes else ""
            listed = ", ".join(
                f"{r['model']} {r.get('samples')}/{r.get(count_column)}" + (f"/{r.get('clusters')}" if volumes else "")
                for r in measured
            )
            parts.append(f"{group} (samples/{count_column}{shown}) {listed}")
    return "measured N: " + ("; ".join(parts) if parts else "none")


def paper_tables(result: Mapping[str, Any]) -> list[PaperTable]:
    """Tables 2-4 of ``result`` in the paper's layout (what ``--format latex`` prints).

    Columns are the paper's (§8): Table 2 Anatomy and Tumor/Lesion ``R P F1 IoU SR IoU>0.5``; Table 3
    ``MAE MRE SR MRE<0.1``; Table 4 the same four for Ceph distance, Ceph angle and FeTA24 distance. The A/D
    overall line (information only) and the extra ``F1>0.5`` column are left out. Lines follow the order of
    the result's rows; ranks are the same as in the other formats.
    """
    out = []
    interval_note = ci_note(result, clusters_column=False)
    for table, _title, count_column, _metrics in TABLES:
        groups = [group for (name, group) in PAPER_COLUMNS if name == table]
        paper = PaperTable(
            table=table,
            title=PAPER_TITLES[table],
            groups=[(group, PAPER_GROUP_HEADINGS[group]) for group in groups],
            metrics={group: list(PAPER_COLUMNS[(table, group)].values()) for group in groups},
        )
        rows = [r for r in result.get(table) or [] if r["group"] in groups]
        columns = sorted({c for group in groups for c in paper.metrics[group]})
        ranks = {c: _ranks(rows, c, "group") for c in columns}
        where: dict[tuple[str, str, str], int] = {}
        for i, row in enumerate(rows):
            line = (str(row["model"]), str(row.get("source", "measured")))
            if line not in paper.lines:
                paper.lines.append(line)
            where[(*line, row["group"])] = i
        for model, source in paper.lines:
            name = model_display_name(model) + (" (paper)" if source == "paper" else "")
            cells, marks, bounds = [name], [None], [None]
            for group in groups:
                index = where.get((model, source, group))
                for column in paper.metrics[group]:
                    if index is None:
                        cells.append("-")
                        marks.append(None)
                        bounds.append(None)
                        continue
                    cells.append(format_value(rows[index].get(column)))
                    marks.append(ranks[column][index])
                    bounds.append(_interval(rows[index], column))
            paper.cells.append(cells)
            paper.ranks.append(marks)
            paper.intervals.append(bounds)
        paper.notes = [UNITS_NOTE[table], _count_note(table, rows, count_column), _headline_note(table)]
        if interval_note:
            paper.notes.append(interval_note)
        for row in rows:
            if row.get("note"):
                paper.notes.append(f"{row['model']} {row['group']} ({row.get('source', 'measured')}): {row['note']}")
        out.append(paper)
    return out


def _latex_paper(t: PaperTable) -> str:
    width = len(t.columns)
    lines = [
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{latex_escape(t.title)}}}",
        f"\\begin{{tabular}}{{l{'r' * (width - 1)}}}",
        "\\toprule",
    ]
    if any(heading for _, heading in t.groups):
        spans, rules, start = [""], [], 2
        for group, heading in t.groups:
            n = len(t.metrics[group])
            spans.append(f"\\multicolumn{{{n}}}{{c}}{{{latex_escape(heading)}}}")
            rules.append(f"\\cmidrule(lr){{{start}-{start + n - 1}}}")
            start += n
        lines.append(" & ".join(spans) + " \\\\")
        lines.append("".join(rules))
    lines.append(" & ".join(latex_escape(c) for c in t.columns) + " \\\\")
    lines.append("\\midrule")
    for cells, marks, bounds in zip(t.cells, t.ranks, t.intervals):
        lines.append(" & ".join(_latex_cell(c, r, i) for c, r, i in zip(cells, marks, bounds)) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    notes = [*t.notes, LATEX_RANK_LEGEND] if _has_marks(t.ranks) else t.notes
    if notes:
        lines.append("\\par\\footnotesize " + latex_escape("; ".join(notes)))
    lines.append("\\end{table}")
    return "\n".join(lines)


def _render_latex(result: Mapping[str, Any], sections: list[_Section]) -> str:
    blocks = [_latex_paper(t) for t in paper_tables(result)]
    blocks += [_latex_long(s) for s in sections[len(TABLES) :]]
    return "% requires \\usepackage{booktabs}\n" + "\n\n".join(blocks) + "\n"


def to_json(result: Mapping[str, Any]) -> str:
    """Strict JSON of the result: NaN as ``null``, an infinity as ``null`` plus ``nonfinite`` (``hygiene.strict``)."""
    return json.dumps(strict(result), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


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
    return _render_latex(result, sections)


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


def _ci_columns(table: str, group: str) -> dict[str, str]:
    """CSV column -> leaderboard column of every cell of one group (the paper's, then the extras)."""
    prefix = _CSV_PREFIX.get(group, f"{group}_")
    columns = dict(PAPER_COLUMNS.get((table, group), {}))
    if table == "detection":
        columns[f"{prefix}{_EXTRA_DETECTION['F1>0.5']}"] = "F1>0.5"
    if group == "ad_overall":
        columns.update({f"{prefix}{suffix}": name for name, suffix in _AD_OVERALL_COLUMNS.items()})
    return columns


def table_csvs(result: Mapping[str, Any]) -> dict[str, str]:
    """The three table files (``table2_detection.csv``, ``table3_tl.csv``, ``table4_ad.csv``) in the column
    layout of the paper CSVs (§8), one line per (model, source), then extra columns: ``source``, per-group
    ``regions``/``labels`` and ``samples``, detection ``*_f1_gt_0.5_pct`` and the A/D overall line; with
    intervals also ``*_clusters`` and ``<column>_ci_low``/``<column>_ci_high`` for every cell. Values are
    unrounded; empty cells mean not available."""
    out: dict[str, str] = {}
    for table, _title, count_column, _metrics in TABLES:
        header = list(load_paper_table(table)[0].keys())
        names = {str(r["model_key"]): (r["paper_name"], r["params"]) for r in load_paper_table(table)}
        groups = [g for (t, g) in PAPER_COLUMNS if t == table] + (["ad_overall"] if table == "ad" else [])
        with_ci = any(row.get("ci") for row in result.get(table) or [])
        extra = ["source"]
        for group in groups:
            prefix = _CSV_PREFIX[group]
            extra += [f"{prefix}{count_column}", f"{prefix}samples"]
            if table == "detection":
                extra.append(f"{prefix}{_EXTRA_DETECTION['F1>0.5']}")
            if group == "ad_overall":
                extra += [f"{prefix}{c}" for c in _AD_OVERALL_COLUMNS.values()]
            if with_ci:
                extra.append(f"{prefix}clusters")
                extra += [f"{c}_ci_{end}" for c in _ci_columns(table, group) for end in ("low", "high")]
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
            if with_ci:
                line[f"{prefix}clusters"] = row.get("clusters")
                for csv_column, name in _ci_columns(table, group).items():
                    bounds = (row.get("ci") or {}).get(name) or [None, None]
                    line[f"{csv_column}_ci_low"], line[f"{csv_column}_ci_high"] = bounds
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header + extra)
        for line in lines.values():
            writer.writerow([_csv_cell(line.get(c)) for c in header + extra])
        out[CSV_FILES[table]] = buffer.getvalue()
    return out


BOXSIZE_CSV_COLUMNS: tuple[str, ...] = (
    "bin", "bin_index", "ratio_low_pct", "ratio_high_pct", "model", "source", "samples", *DETECTION_METRICS,
)  # fmt: skip


def boxsize_csv(boxsize: Mapping[str, Any]) -> str:
    """The box-size rows as CSV (unrounded, percent; empty cells mean not available)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(BOXSIZE_CSV_COLUMNS)
    for row in boxsize.get("rows") or []:
        writer.writerow([_csv_cell(row.get(c)) for c in BOXSIZE_CSV_COLUMNS])
    return buffer.getvalue()
