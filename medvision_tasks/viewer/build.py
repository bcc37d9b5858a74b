"""Write the static viewer folder: index.html, its JS/CSS, data scripts and the re-rendered images.

Data travels as `<script>` files (`data/table.js`, `data/detail-NNNN.js`) because browsers refuse `fetch()`
of local files under file://. Every string reaches the page through `textContent`, never as markup.

Default image selection (`--images N`, N = 5 by default), per subtask and seeded by the subtask name:
for every model the 3 worst and 3 best parsed samples by the primary metric (detection IoU, T/L and A/D
MRE) and up to 3 failed parses, plus N random samples of the subtask. A selected sample is rendered once
and shared by every model that answered it in the same frame. `--images all` renders every sample,
`--images none` none (the page then shows the overlay on an empty frame).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from medvision_metrics.parse import ANSWER_TAG_PATTERN, NUMBER_PATTERN
from medvision_metrics.scoring import FAMILY_K

from ..prompts import prompt_sha1
from .load import Entry, LoadReport, load_samples
from .scene import MISSING, RowSource, display_frame, image_key, overlay, rebuild_prompt, render_display

MARKER = ".medvision-viewer"
STATIC_FILES = ("index.html", "viewer.js", "viewer.css")
CHUNK = 250
DEFAULT_RANDOM = 5
PER_MODEL_EXTREMES = 3
PRIMARY = {"detection": ("iou", True), "tl": ("mre", False), "ad": ("mre", False)}


class OutputFolderError(ValueError):
    """The output folder exists and is not a viewer folder (pass --force to replace it)."""


@dataclass
class BuildSummary:
    """What a build wrote, for the command's closing lines and for tests."""

    out: Path
    records: int
    images: int
    image_failures: int
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    malformed: int = 0
    report: LoadReport | None = None


def parse_images_option(text: str) -> int | str:
    """`all`, `none` or a non-negative count of random samples per subtask."""
    if text in ("all", "none"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--images {text!r}: expected all, none or a number of random samples per subtask") from None
    if value < 0:
        raise ValueError(f"--images {text!r}: the count must be 0 or more")
    return value


def failure_reason(record: dict[str, Any]) -> str | None:
    """Why a response did not parse (None when it did)."""
    if record.get("success"):
        return None
    if record.get("generation_error"):
        return f"generation error: {record['generation_error']}"
    response = record.get("response") or ""
    if not response:
        return "empty response"
    mode = (record.get("settings") or {}).get("parse", "last_k")
    k = FAMILY_K.get(record.get("family"), 1)
    text = response
    if mode == "answer_tag":
        match = ANSWER_TAG_PATTERN.search(response)
        if match is None:
            return "no <answer>...</answer> tag (answer_tag parsing)"
        text = match.group(1)
    found = len(NUMBER_PATTERN.findall(text))
    if found < k:
        return f"{found} number(s) found, {k} needed ({mode} parsing)"
    return f"the last {k} numbers do not convert to float32 ({mode} parsing)"


def primary_value(record: dict[str, Any]) -> float | None:
    """The record's primary metric (detection IoU, else MRE), None on failure or NaN."""
    name, _ = PRIMARY.get(record.get("family"), ("iou", True))
    value = (record.get("metrics") or {}).get(name)
    if not record.get("success") or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def sample_key(record: dict[str, Any]) -> str:
    """Key shared by the answers of different models to one sample (side-by-side)."""
    return f"{record.get('task')}|{record.get('row')}"


def select_images(entries: list[Entry], images: int | str, seed: int = 0) -> set[str]:
    """Sample ids whose image is rendered (see the module docstring)."""
    if images == "none":
        return set()
    if images == "all":
        return {e.sid for e in entries}
    by_task: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        by_task[str(entry.record.get("task"))].append(entry)
    chosen_keys: set[str] = set()
    for task, group in sorted(by_task.items()):
        by_model: dict[str, list[Entry]] = defaultdict(list)
        for entry in group:
            by_model[entry.model].append(entry)
        for _model, items in sorted(by_model.items()):
            scored = [(primary_value(e.record), e) for e in items]
            ok = [(v, e) for v, e in scored if v is not None]
            higher = PRIMARY.get(items[0].record.get("family"), ("iou", True))[1]
            ok.sort(key=lambda pair: pair[0], reverse=higher)  # best first
            picks = ok[:PER_MODEL_EXTREMES] + ok[-PER_MODEL_EXTREMES:]
            picks += [(None, e) for v, e in scored if v is None and not e.record.get("success")][:PER_MODEL_EXTREMES]
            chosen_keys.update(sample_key(e.record) for _, e in picks)
        keys = sorted({sample_key(e.record) for e in group})
        rng = random.Random(int(hashlib.sha1(f"{seed}:{task}".encode()).hexdigest()[:8], 16))
        chosen_keys.update(rng.sample(keys, min(int(images), len(keys))))
    return {e.sid for e in entries if sample_key(e.record) in chosen_keys}


def check_output_folder(out: Path, force: bool) -> None:
    """Refuse an existing, non-empty folder that is not a viewer folder unless `force`."""
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"--out {out}: exists and is not a folder; pass another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file() and not force:
        raise OutputFolderError(
            f"--out {out}: folder exists and is not a viewer folder (no {MARKER}); pass --force to replace its "
            "contents or choose another --out"
        )


def _prepare_output(out: Path, force: bool) -> None:
    check_output_folder(out, force)
    if out.is_dir() and (force or (out / MARKER).is_file()):
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("lmms-eval-medvision prediction viewer\n", encoding="utf-8")


def copy_static(out: Path) -> list[str]:
    """Copy index.html, viewer.js and viewer.css from the package into `out`."""
    written = []
    base = resources.files("medvision_tasks.viewer") / "static"
    for name in STATIC_FILES:
        (out / name).write_bytes((base / name).read_bytes())
        written.append(name)
    return written


def _js(call: str, payload: Any) -> str:
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"), allow_nan=True)
    return f"{call}{text});\n" if call.endswith(",") else f"{call}({text});\n"


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.label, self.enabled, self.done = total, label, enabled and total > 0, 0

    def step(self) -> None:
        self.done += 1
        if self.enabled and (self.done == self.total or self.done % max(1, self.total // 200) == 0):
            width = 30
            filled = int(width * self.done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            print(f"\r{self.label} [{bar}] {self.done}/{self.total}", end="", file=sys.stderr, flush=True)
            if self.done == self.total:
                print(file=sys.stderr)


class Builder:
    """Turns loaded entries into table rows, detail records and images (also used by `--serve`)."""

    def __init__(self, report: LoadReport, out: Path, data_root: Path | None = None) -> None:
        self.report = report
        self.out = out
        self.rows = RowSource(data_root)
        self.by_sid = {e.sid: e for e in report.entries}

    def doc_for(self, entry: Entry) -> tuple[dict[str, Any] | None, str | None]:
        return self.rows.doc(entry.record)

    def prompt(self, entry: Entry, doc: dict[str, Any] | None, doc_note: str | None) -> tuple[str | None, str]:
        """(user prompt, where it came from): the logged lmms-eval input when its SHA-1 matches the record."""
        sha = entry.record.get("prompt_sha1")
        if entry.logged_prompt is not None and (sha is None or prompt_sha1(entry.logged_prompt) == sha):
            return entry.logged_prompt, "logged by lmms-eval (samples file `input`)"
        if doc is None:
            return None, f"prompt unavailable: {doc_note}"
        try:
            text = rebuild_prompt(entry.record, doc)
        except Exception as exc:
            return None, f"prompt unavailable: cannot rebuild it ({exc})"
        if sha and prompt_sha1(text) != sha:
            return text, "rebuilt from the row; differs from the run's prompt_sha1 (data root or geometry changed?)"
        return text, "rebuilt from the row with the run's prompt code (matches prompt_sha1)"

    def render(self, entry: Entry, doc: dict[str, Any] | None, note: str | None) -> tuple[Any, str | None]:
        """PIL image of an entry or (None, reason)."""
        if doc is None:
            return None, note
        try:
            return render_display(entry.record, doc, display_frame(entry.record)), None
        except Exception as exc:
            return None, f"{MISSING}: {doc.get('image_file')} ({type(exc).__name__}: {exc})"

    def detail(self, entry: Entry, want_doc: bool) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
        record = entry.record
        frame = display_frame(record)
        doc, note = (None, None)
        # T/L and A/D overlays come from the landmark files, so their row is read even without an image
        need_doc = want_doc or entry.logged_prompt is None or record.get("family") in ("tl", "ad")
        if need_doc:
            doc, note = self.doc_for(entry)
        text, source = self.prompt(entry, doc, note)
        generation = (record.get("model") or {}).get("generation") or {}
        system = generation.get("system_prompt") if isinstance(generation, dict) else None
        fields = ("task", "family", "config", "row", "dataset", "taskID", "slice_dim", "slice_idx", "label",
                  "label_name", "image_file_rel", "image_size_2d", "modality", "metric_type", "metric_key", "target",
                  "parsed", "success", "metrics", "excluded", "exclusion_reason", "truncated", "generation_error",
                  "geometry", "settings_id", "data_root_kind")  # fmt: skip
        item = {k: record.get(k) for k in fields}  # records are JSON-clean already (NaN written as null)
        item.update(
            sid=entry.sid,
            model=entry.model,
            adapter=(record.get("model") or {}).get("adapter"),
            pretrained=(record.get("model") or {}).get("pretrained"),
            system=system,
            prompt=text,
            prompt_source=source,
            prompt_sha1=record.get("prompt_sha1"),
            response=record.get("response") or "",
            failure=failure_reason(record),
            overlay=overlay(record, frame, doc),
            source=f"{entry.source}:{entry.line}",
        )
        return item, doc, note

    def image_for(self, sid: str) -> tuple[bytes | None, str | None]:
        """PNG bytes of one sample rendered now (for --serve), or (None, reason)."""
        import io

        entry = self.by_sid[sid]
        doc, note = self.doc_for(entry)
        img, why = self.render(entry, doc, note)
        if img is None:
            return None, why
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=False)
        return buf.getvalue(), None


def _table_row(entry: Entry, chunk: int, has_image: bool) -> dict[str, Any]:
    """The compact row of one sample in `data/table.js` (short keys: the table holds up to 30,000 rows)."""
    record = entry.record
    return {
        "i": entry.sid,
        "m": entry.model,
        "f": record.get("family"),
        "t": record.get("task"),
        "d": record.get("dataset"),
        "l": record.get("label_name") or record.get("metric_key") or record.get("label"),
        "ok": bool(record.get("success")),
        "x": bool(record.get("excluded")),
        "k": entry.table_key,
        "mt": record.get("metrics") or {},
        "r": record.get("row"),
        "s": record.get("slice_idx"),
        "c": chunk,
        "img": has_image,
        "sk": sample_key(record),
    }


def build_viewer(
    paths: list[str | Path],
    out: str | Path | None = None,
    images: int | str = DEFAULT_RANDOM,
    force: bool = False,
    data_root: Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> BuildSummary:
    """Load the samples, then write the viewer into `out` (default `<first path>/viewer`)."""
    report = load_samples(list(paths))
    first = Path(paths[0])
    out_dir = Path(out) if out is not None else (first if first.is_dir() else first.parent) / "viewer"
    check_output_folder(out_dir, force)
    _prepare_output(out_dir, force)
    builder = Builder(report, out_dir, data_root)
    selected = select_images(report.entries, images, seed)
    distinct = {image_key(e.record, display_frame(e.record)) for e in report.entries if e.sid in selected}
    bar = Progress(len(distinct), "rendering images", progress and images == "all")

    table: list[dict[str, Any]] = []
    # details are chunked in sample order, so every model's answer to one sample sits in the same file
    order = sorted(range(len(report.entries)), key=lambda i: (sample_key(report.entries[i].record), i))
    chunk_of = {index: rank // CHUNK for rank, index in enumerate(order)}
    chunks: list[dict[str, Any]] = [{} for _ in range((len(order) + CHUNK - 1) // CHUNK)]
    written_images: dict[str, str | None] = {}
    image_notes: dict[str, str] = {}
    failures = 0
    for index, entry in enumerate(report.entries):
        want = entry.sid in selected
        detail, doc, note = builder.detail(entry, want_doc=want)
        frame = display_frame(entry.record)
        image = None
        image_note = None
        if want:
            key = image_key(entry.record, frame)
            if key not in written_images:
                img, why = builder.render(entry, doc, note)
                if img is None:
                    written_images[key], image_notes[key] = None, why or MISSING
                    failures += 1
                else:
                    name = f"images/{key}.png"
                    img.save(out_dir / name, format="PNG", compress_level=1)
                    written_images[key] = name
                bar.step()
            image = written_images[key]
            image_note = image_notes.get(key)
        else:
            image_note = "not pre-rendered (the default selection; rebuild with --images all, or use --serve)"
        detail["image"], detail["image_note"] = image, image_note
        chunk = chunk_of[index]
        chunks[chunk][entry.sid] = detail
        table.append(_table_row(entry, chunk, image is not None))
    files = copy_static(out_dir)
    data = out_dir / "data"
    for number, chunk_items in enumerate(chunks):
        (data / f"detail-{number:04d}.js").write_text(_js(f"MV.detail({number},", chunk_items), encoding="utf-8")
    meta = {
        "records": len(table),
        "files": report.files,
        "skipped_files": report.skipped_files,
        "malformed": report.malformed,
        "warnings": report.warnings,
        "images": sum(1 for v in written_images.values() if v),
        "image_failures": failures,
        "selection": images if isinstance(images, str) else f"default: {images} random per subtask + extremes",
    }
    (data / "table.js").write_text(_js("MV.table", {"meta": meta, "rows": table}), encoding="utf-8")
    files += ["data/table.js"] + [f"data/detail-{n:04d}.js" for n in range(len(chunks))]
    return BuildSummary(
        out=out_dir,
        records=len(table),
        images=meta["images"],
        image_failures=failures,
        files=files,
        warnings=report.warnings,
        malformed=report.malformed_total,
        report=report,
    )
