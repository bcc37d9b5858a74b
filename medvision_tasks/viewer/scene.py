"""What the model saw, and what to draw on it: display frame, re-rendered image, overlay shapes, prompt.

Coordinates of the shapes are display pixels with the origin at the top-left corner of the displayed image
(the frame a browser canvas uses); they are converted from the answer frame of docs/reference.md §3.5/§5.1
(relative, origin lower-left) and from landmark voxel indices (docs/reference.md §1.12).

* **Display frame.** Detection: the rendered slice (native, or N x N for a resolution variant).
  T/L and A/D: the canvas the prompt stated (geometry `canvas`), with the rendered slice resized (bilinear)
  to the geometry `content` and centred in it when a rule pads (top-left for `mllama_tiles`, which pads
  right and bottom).
* **Boxes.** A relative coordinate indexes a pixel of the original slice (GT `max_coords` are inclusive
  pixel indices, docs/reference.md §5.1), so a box covers the cells from its min to its max index: the
  drawn GT box is the outline of exactly the mask's bounding pixels.
* **Landmarks.** Voxel index (row, col) of the slice is drawn at the centre of that pixel.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..data import PLANE_LETTER_BY_DIM
from ..settings import Settings

MISSING = "image unavailable"


@dataclass(frozen=True)
class Frame:
    """Displayed image size and the map from original slice indices (row, col) to display pixels."""

    width: int
    height: int
    src_h: int
    src_w: int
    off_x: float = 0.0
    off_y: float = 0.0
    content_w: int | None = None
    content_h: int | None = None

    @property
    def sx(self) -> float:
        return (self.content_w or self.width) / self.src_w

    @property
    def sy(self) -> float:
        return (self.content_h or self.height) / self.src_h

    def cell_box(self, r0: float, c0: float, r1: float, c1: float) -> list[float]:
        """Display outline [x0, y0, x1, y1] of the pixel cells rows r0..r1, cols c0..c1 (inclusive)."""
        return [
            c0 * self.sx + self.off_x,
            r0 * self.sy + self.off_y,
            (c1 + 1) * self.sx + self.off_x,
            (r1 + 1) * self.sy + self.off_y,
        ]

    def point(self, row: float, col: float) -> list[float]:
        """Display position of the centre of slice pixel (row, col)."""
        return [(col + 0.5) * self.sx + self.off_x, (row + 0.5) * self.sy + self.off_y]


def settings_from_record(record: dict[str, Any]) -> Settings:
    """The frozen settings a record was run with (unknown keys from newer plugins ignored)."""
    names = {f.name for f in dataclasses.fields(Settings)}
    values = {k: v for k, v in (record.get("settings") or {}).items() if k in names}
    return Settings(**values)


def display_frame(record: dict[str, Any]) -> Frame:
    """Frame of the image the model answered in (see the module docstring)."""
    h0, w0 = (int(v) for v in record["image_size_2d"])
    geometry = record.get("geometry")
    if isinstance(geometry, dict) and geometry.get("canvas") and geometry.get("content"):
        ch, cw = (int(v) for v in geometry["canvas"])
        nh, nw = (int(v) for v in geometry["content"])
        if str(geometry.get("rule")) == "mllama_tiles":  # Mllama pads right and bottom
            return Frame(cw, ch, h0, w0, 0.0, 0.0, nw, nh)
        return Frame(cw, ch, h0, w0, (cw - nw) // 2, (ch - nh) // 2, nw, nh)
    reshape = (record.get("settings") or {}).get("reshape")
    if reshape:
        return Frame(int(reshape), int(reshape), h0, w0)
    return Frame(w0, h0, h0, w0)


def relative_box(frame: Frame, box: list[float]) -> list[float]:
    """Display outline of a relative box [x_min, y_min, x_max, y_max] (origin lower-left, docs/reference.md §3.5)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    h, w = frame.src_h, frame.src_w
    # pixel indices, rounded to 1e-6 so that float noise of the division in the GT formula does not show
    return frame.cell_box(round((1.0 - y1) * h, 6), round(x0 * w, 6), round((1.0 - y0) * h, 6), round(x1 * w, 6))


# --------------------------------------------------------------------------------------- landmarks
@lru_cache(maxsize=256)
def _read_json_gz_cached(path: str, mtime_ns: int) -> Any:
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def _read_json_gz(path: Path) -> Any:
    return _read_json_gz_cached(str(path), path.stat().st_mtime_ns)


def slice_landmarks(path: Path, slice_dim: int, slice_idx: int) -> Any:
    """The `landmarks` of one slice: a {name: [i, j, k]} dict (A/D) or a list of ellipse dicts (T/L).

    Reads the release format (`slice_landmarks_x/y/z` lists of `{slice_idx, landmarks}`, docs/reference.md
    §1.12), the phantom's T/L form (`{"slices": [{slice_dim, slice_idx, ellipses}]}`) and a plain
    {name: [i, j, k]} dict of 3-D voxel landmarks (the phantom's A/D form). None when the slice is absent.
    """
    data = _read_json_gz(path)
    key = f"slice_landmarks_{PLANE_LETTER_BY_DIM[slice_dim]}"
    if isinstance(data, dict) and key in data:
        for entry in data[key] or []:
            if int(entry.get("slice_idx", -1)) == slice_idx:
                return entry.get("landmarks")
        return None
    if isinstance(data, dict) and isinstance(data.get("slices"), list):
        for entry in data["slices"]:
            if int(entry.get("slice_dim", slice_dim)) == slice_dim and int(entry.get("slice_idx", -1)) == slice_idx:
                return entry.get("ellipses") or entry.get("landmarks")
        return None
    if isinstance(data, dict) and all(isinstance(v, list) and len(v) == 3 for v in data.values()):
        return data
    return None


def _rc(point: list[float], slice_dim: int) -> tuple[float, float]:
    r, c = (float(v) for i, v in enumerate(point) if i != slice_dim)
    return r, c


def landmark_shapes(record: dict[str, Any], doc: dict[str, Any], frame: Frame) -> tuple[dict[str, Any], str | None]:
    """Overlay shapes of the GT landmarks of a T/L or A/D row, and a note when they cannot be drawn."""
    path = doc.get("landmark_file")
    if not path:
        return {}, "no landmark file in the row"
    if not Path(path).is_file():
        return {}, f"landmark file missing: {path}"
    dim, idx = int(record["slice_dim"]), int(record["slice_idx"])
    try:
        marks = slice_landmarks(Path(path), dim, idx)
    except (OSError, ValueError) as exc:
        return {}, f"landmark file unreadable: {path}: {exc}"
    if marks is None:
        return {}, f"slice {idx} not in {path}"
    if record["family"] == "tl":
        ellipse = marks[0] if isinstance(marks, list) and marks else None
        if not isinstance(ellipse, dict) or not all(k in ellipse for k in ("P1", "P2", "P3", "P4")):
            return {}, f"no ellipse end points (P1-P4) for slice {idx} in {path}"
        pts = {k: frame.point(*_rc(ellipse[k], dim)) for k in ("P1", "P2", "P3", "P4")}
        return {"points": pts, "lines": [["P1", "P2", "major"], ["P3", "P4", "minor"]]}, None
    if not isinstance(marks, dict):
        return {}, f"slice {idx} of {path} holds no landmark dict"
    pairs = doc.get("mv_viewer_ad_keys") or []
    if not pairs:
        return {}, "the plan does not name this measurement's landmarks"
    names = sorted({n for pair in pairs for n in pair})
    absent = [n for n in names if n not in marks]
    if absent:
        return {}, f"landmark(s) {', '.join(absent)} not in {path}"
    pts = {n: frame.point(*_rc(marks[n], dim)) for n in names}
    kind = "distance" if len(pairs) == 1 else "angle"
    return {"points": pts, "lines": [[a, b, kind] for a, b in pairs]}, None


def overlay(record: dict[str, Any], frame: Frame, doc: dict[str, Any] | None) -> dict[str, Any]:
    """All shapes and values to draw for one record (detection boxes need no row; landmarks do)."""
    family = record["family"]
    out: dict[str, Any] = {"frame": [frame.width, frame.height]}
    if family == "detection":
        target = record.get("target")
        if isinstance(target, list) and len(target) == 4:
            out["gt_box"] = relative_box(frame, target)
        parsed = record.get("parsed")
        if record.get("success") and isinstance(parsed, list) and len(parsed) == 4:
            if all(isinstance(v, (int, float)) and math.isfinite(v) for v in parsed):
                out["pred_box"] = relative_box(frame, parsed)
        return out
    if doc is None:
        out["note"] = "landmarks need the data root (the row's landmark file)"
        return out
    shapes, note = landmark_shapes(record, doc, frame)
    out.update(shapes)
    if note:
        out["note"] = note
    return out


# ------------------------------------------------------------------------------------------- rows
class RowSource:
    """Rows of each (data root, config, settings) read once with the run's own row code."""

    def __init__(self, data_root: Path | None) -> None:
        self.data_root = data_root
        self._rows: dict[tuple[str, str, str], list[dict[str, Any]] | str] = {}
        self._demo_root: Path | None = None
        self._settings: dict[str, Settings] = {}

    def root_for(self, record: dict[str, Any]) -> Path | str:
        """The data root of a record, or the reason there is none."""
        if record.get("data_root_kind") == "demo":
            if self._demo_root is None:
                from ..demo import ensure_demo_root

                self._demo_root = ensure_demo_root()
            return self._demo_root
        if self.data_root is not None:
            return self.data_root
        from ..settings import data_dir_from_env

        value = data_dir_from_env()
        if not value:
            return "no data root: set MEDVISION_DATA_DIR or pass --data-root"
        return Path(value).expanduser()

    def doc(self, record: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """The row a record was scored on, or (None, reason)."""
        root = self.root_for(record)
        where = f"{record.get('dataset')}/{record.get('image_file_rel')}"
        if isinstance(root, str):
            return None, f"{MISSING}: {where} ({root})"
        blob = json.dumps(record.get("settings") or {}, sort_keys=True)
        if blob not in self._settings:
            self._settings[blob] = settings_from_record(record)
        settings = self._settings[blob]
        key = (str(root), str(record["config"]), blob)
        if key not in self._rows:
            from ..arrow_rows import rows_for_subtask

            try:
                demo = record.get("data_root_kind") == "demo"
                self._rows[key] = rows_for_subtask(root, record["config"], settings, use_arrow=not demo)
            except Exception as exc:  # a missing or unreadable data root: the sample shows the reason
                self._rows[key] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        rows = self._rows[key]
        path = root / "Datasets" / str(record.get("dataset")) / str(record.get("image_file_rel"))
        if isinstance(rows, str):
            return None, f"{MISSING}: {path} ({rows})"
        index = int(record["row"])
        if index >= len(rows):
            return None, f"{MISSING}: {path} (row {index} not among the {len(rows)} rows of {record['config']})"
        doc = dict(rows[index])
        if int(doc["slice_idx"]) != int(record["slice_idx"]) or doc.get("mv_image_file_rel") != record.get(
            "image_file_rel"
        ):
            return None, f"{MISSING}: {path} (row {index} of the data root is a different slice; data root changed?)"
        doc.setdefault("mv_task", record["task"])
        if record.get("family") == "ad":
            doc["mv_viewer_ad_keys"] = self._ad_keys(root, record, doc, settings)
        if not Path(doc["image_file"]).is_file():
            return None, f"{MISSING}: {doc['image_file']}"
        return doc, None


    def _ad_keys(self, root: Path, record: dict[str, Any], doc: dict[str, Any], settings: Settings) -> list[list[str]]:
        """Landmark keys (as in the landmark file) of the line(s) an A/D row measures, from the plan maps."""
        from ..data import parse_config_name, plan_inputs, plan_task, read_plan

        try:
            cfg = parse_config_name(str(record["config"]))
            inputs = plan_inputs(root, cfg, settings.planner_version)
            task = plan_task(read_plan(inputs.plan_path), cfg.task_id, str(inputs.plan_path))
            bio = doc["biometric_profile"]
            entry = task[bio["metric_map_name"]][bio["metric_key"]]
            if bio["metric_type"] == "distance":
                return [[str(k) for k in entry["element_keys"]]]
            lines = [task[entry["element_map_name"]][k] for k in entry["element_keys"]]
            return [[str(k) for k in line["element_keys"]] for line in lines]
        except Exception:
            return []


def render_display(record: dict[str, Any], doc: dict[str, Any], frame: Frame) -> Any:
    """The displayed image: the run's render of the row, resized into the stated canvas when it differs."""
    from PIL import Image

    from ..hooks import render_image

    img = render_image(doc, settings_from_record(record))
    content = (frame.content_w or frame.width, frame.content_h or frame.height)
    if img.size != content:
        img = img.resize(content, Image.BILINEAR)
    if content != (frame.width, frame.height):
        canvas = Image.new("RGB", (frame.width, frame.height), (0, 0, 0))
        canvas.paste(img, (int(frame.off_x), int(frame.off_y)))
        img = canvas
    return img


def image_key(record: dict[str, Any], frame: Frame) -> str:
    """Identity of a displayed image: the same slice, render settings and frame give one shared file."""
    import hashlib

    settings = record.get("settings") or {}
    blob = json.dumps(
        [
            record.get("data_root_kind"),
            record.get("dataset"),
            record.get("image_file_rel"),
            record.get("slice_dim"),
            record.get("slice_idx"),
            record.get("label") if settings.get("intensity") == "hu_window" else None,
            settings.get("intensity"),
            settings.get("reshape"),
            [frame.width, frame.height, frame.content_w, frame.content_h],
        ],
        separators=(",", ":"),
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ prompt
def rebuild_prompt(record: dict[str, Any], doc: dict[str, Any]) -> str:
    """The user prompt of a row rebuilt with the run's prompt and geometry code (`hooks.prompt_for_geometry`)."""
    from ..hooks import prompt_for_geometry
    from ..prompts import build_prompt

    settings = settings_from_record(record)
    if record["family"] == "detection":
        return build_prompt(doc, settings.prompt_style)
    geometry = record.get("geometry") or {}
    rule = geometry.get("rule_string") or geometry.get("rule")
    if not rule:
        raise ValueError("the record has no geometry rule")
    return prompt_for_geometry(doc, settings, str(rule))[0]
