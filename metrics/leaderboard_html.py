"""`leaderboard.html`: the three tables with every cell linking to the viewer's samples behind it.

Pure: knows records and leaderboard results only (no lmms-eval, no NIfTI). The link is
``<viewer>/index.html#model=<key>&family=<f>&keys=<k1>|<k2>...`` where the keys are the region/label keys
that make up the row (docs/reference.md §6.2-§6.4); the viewer filters on the same keys, computed by
:func:`record_table_key`.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .errors import RecordError
from .labels import ad_label_key, region_key, tl_label_key

TABLES = (("detection", "Table 2 - detection", "region"), ("tl", "Table 3 - T/L size", "label"),
          ("ad", "Table 4 - A/D", "label"))  # fmt: skip
DETAIL_KEY = {"detection": "detection_regions", "tl": "tl_labels", "ad": "ad_labels"}
KEY_SEPARATOR = "|"


def record_table_key(record: Mapping[str, Any]) -> str | None:
    """Region key (detection) or label key (T/L, A/D) of a record as the leaderboard groups it; None if unknown."""
    try:
        family = record.get("family")
        if family == "detection":
            return region_key(record.get("region_label"), record.get("region_modality"), record.get("slice_dim"),
                              "others")  # fmt: skip
        if family == "tl":
            name = record["region_label"] if record.get("region_label") is not None else record.get("label_name")
            modality = record.get("region_modality")
            modality = modality if modality is not None else record.get("modality")
            return tl_label_key(name, modality, record.get("slice_dim"), "others")
        if family == "ad":
            return ad_label_key(record.get("dataset"), record.get("metric_type"), record.get("metric_key"))
    except (RecordError, KeyError, TypeError):
        return None
    return None


def row_keys(result: Mapping[str, Any], family: str, model: str, group: str | None) -> list[str]:
    """Region/label keys that feed one table row (`in_row` details of that model and group)."""
    field = "region" if family == "detection" else "label"
    keys = []
    for item in result.get("details", {}).get(DETAIL_KEY[family], []):
        if item.get("model") != model:
            continue
        if family != "tl" and group is not None and item.get("group") != group and group != "ad_overall":
            continue
        if family == "detection" and not item.get("in_row", True):
            continue
        if family == "tl" and not item.get("in_row", True):
            continue
        keys.append(str(item.get(field)))
    return keys


def viewer_link(viewer_href: str, model: str, family: str, keys: list[str]) -> str:
    """Fragment link into the viewer that selects the samples of one leaderboard row."""
    parts = [f"model={quote(model, safe='')}", f"family={quote(family, safe='')}"]
    if keys:
        parts.append("keys=" + quote(KEY_SEPARATOR.join(keys), safe=""))
    return f"{viewer_href}#{'&'.join(parts)}"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.1f}"
    return html.escape(str(value))


def leaderboard_html(result: Mapping[str, Any], viewer_href: str = "viewer/index.html") -> str:
    """A self-contained HTML page of the leaderboard tables; each cell links to its samples in the viewer."""
    out = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>MedVision leaderboard</title>",
        "<style>body{font:14px sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,td:nth-child(2){text-align:left}"
        "a{text-decoration:none;color:#0645ad}</style></head><body>",
        "<h1>MedVision leaderboard</h1>",
        f"<p>Each cell links to its samples in the prediction viewer (<code>{html.escape(viewer_href)}</code>; "
        "build it with <code>medvision-eval view RUN...</code>).</p>",
    ]
    for family, title, _ in TABLES:
        rows = result.get(family) or []
        if not rows:
            continue
        columns = [c for c in rows[0] if c not in ("model", "group", "source") and not c.endswith("_ci")]
        out.append(f"<h2>{html.escape(title)}</h2><table><tr><th>model</th><th>group</th>")
        out.extend(f"<th>{html.escape(str(c))}</th>" for c in columns)
        out.append("</tr>")
        for row in rows:
            model, group = str(row.get("model")), row.get("group")
            measured = row.get("source", "measured") == "measured"
            href = viewer_link(viewer_href, model, family, row_keys(result, family, model, group)) if measured else None
            out.append(f"<tr><td>{html.escape(model)}</td><td>{html.escape(str(group))}</td>")
            for column in columns:
                text = _cell(row.get(column))
                if href:
                    out.append(f"<td><a href=\"{html.escape(href, quote=True)}\">{text}</a></td>")
                else:
                    out.append(f"<td>{text}</td>")
            out.append("</tr>")
        out.append("</table>")
    out.append("</body></html>\n")
    return "".join(out)


def default_viewer_href(out_dir: str | Path, paths: Sequence[str | Path]) -> str:
    """Relative link from `out_dir` to the viewer `medvision-eval view` writes by default (`<first run>/viewer`)."""
    first = Path(paths[0]) if paths else Path(".")
    viewer = (first if first.is_dir() or not first.suffix else first.parent) / "viewer" / "index.html"
    return Path(os.path.relpath(viewer.resolve(), Path(out_dir).resolve())).as_posix()


def write_leaderboard_html(result: Mapping[str, Any], out_dir: str | Path, paths: Sequence[str | Path]) -> Path:
    """Write `leaderboard.html` into `out_dir`, linking to the default viewer of the first run."""
    target = Path(out_dir) / "leaderboard.html"
    target.write_text(leaderboard_html(result, default_viewer_href(out_dir, paths)), encoding="utf-8")
    return target
