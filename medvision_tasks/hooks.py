"""lmms-eval glue named by `!function` in the task YAMLs: thin delegations, no side effects at import.

Data flow: stub row -> `process_docs` (rows of one config) -> `doc_to_visual` / `doc_to_text` ->
model -> `process_results` (parse, score, per-sample record) -> `aggregate_*` (per-task metrics).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from medvision_metrics.hygiene import strict
from medvision_metrics.scoring import MULTICLUSTER_FILE, ScoringSwitches, score_sample

from . import __version__
from .arrow_rows import RowSources, rows_for_subtask
from .errors import PlanError, SettingsError
from .geometry import stated_pixel_size
from .integrity import check_referenced_files
from .prompts import build_prompt, prompt_sha1
from .provenance import row_source
from .render import (
    hu_window_for,
    in_plane_spacing,
    intensity_uint8,
    load_slice,
    reshape_slice,
    to_rgb_image,
    volume_info,
)
from .runerrors import data_errors_end_run
from .settings import Settings, active_model, allow_non_ras, data_dir_from_env, resolve_settings
from .spacing import record_fields as spacing_record_fields
from .spacing import scale_stated, scale_target, spacing_factor
from .stock_geometry import DerivedGeometry

RECORD_SCHEMA = 1
GEOMETRY_HELP = (
    "declare the image geometry the model sees (docs/reference.md §3.7): set MEDVISION_GEOMETRY (e.g. "
    "'qwen_smart_resize:max_pixels=1605632', 'fixed:size=896', or 'native' for a model that sees the native "
    "slice), use a medvision_* adapter (--model medvision_qwen2_5_vl ...), or add `geometry:` to the task's "
    "lmms_eval_specific_kwargs block for your --model name (derived automatically for the stock models "
    "qwen2_5_vl, gemma3, llava_onevision, internvl3, llama_vision and vllm)"
)


# ----------------------------------------------------------------------------------------------- rows
def resolve_data_root(kind: str) -> Path:
    """The demo root (generated on first use) or the user's MEDVISION_DATA_DIR."""
    if kind == "demo":
        from .demo import ensure_demo_root

        return ensure_demo_root()
    value = data_dir_from_env()
    if not value:
        raise PlanError(
            "MEDVISION_DATA_DIR is not set; point it at a MedVision data root (the folder holding Datasets/), "
            "or run the bundled demo with --tasks medvision_demo."
        )
    return Path(value).expanduser()


def settings_for(doc: dict[str, Any]) -> Settings:
    """Frozen settings of the doc's subtask."""
    return resolve_settings(doc["mv_task"], doc.get("mv_variant"))


def build_rows(stub: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the subtask described by one stub line, checked for missing files."""
    settings = resolve_settings(stub["mv_task"], stub.get("mv_variant"))
    root = resolve_data_root(stub.get("mv_data_root_kind", "real"))
    # Arrow rows (docs/reference.md §1.6) when MEDVISION_ARROW_DIR/_MAP name the config, else plan rows through the row
    # cache.
    demo = stub.get("mv_data_root_kind") == "demo"
    sources = RowSources.from_env()
    rows = rows_for_subtask(root, stub["mv_config"], settings, sources, use_arrow=not demo)
    if not rows:
        raise PlanError(f"{root}: config {stub['mv_config']} has no rows after the filters; check the plan files.")
    missing = sorted({r["image_file"] for r in rows if not Path(r["image_file"]).is_file()})
    missing += sorted(
        {r["landmark_file"] for r in rows if r.get("landmark_file") and not Path(r["landmark_file"]).is_file()}
    )
    if missing:
        shown = "\n  ".join(missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise PlanError(
            f"{stub['mv_config']}: {len(missing)} file(s) referenced by the plan are missing under {root}:\n  "
            f"{shown}{more}\nRe-download the dataset or run `medvision-eval doctor --tasks {stub['mv_task']}`."
        )
    check_referenced_files(rows, stub["mv_config"], stub["mv_task"])
    if settings.tl_remove_multicluster and stub["mv_family"] == "tl" and rows[0].get("mv_multicluster_listed") is None:
        raise PlanError(
            f"MEDVISION_TL_REMOVE_MULTICLUSTER=1 but {root}/Datasets/{rows[0]['dataset_name']}/"
            f"{MULTICLUSTER_FILE} is missing; add it (dataset release >= 1.1.0) "
            "or unset the switch."
        )
    arrow = None if demo else sources.arrow_source(stub["mv_config"])
    source = json.dumps(row_source(root, stub["mv_config"], settings.planner_version, sources, arrow))
    for r in rows:
        r["mv_row_source"] = source
        r["mv_task"] = stub["mv_task"]
        r["mv_variant"] = stub.get("mv_variant") or {}
        r["mv_data_root_kind"] = stub.get("mv_data_root_kind", "real")
    return rows


@data_errors_end_run
def process_docs(dataset: Any) -> Any:
    """Replace the one-line stub split with the real rows of its config (docs/reference.md §0.4)."""
    import datasets

    if len(dataset) != 1:
        raise PlanError(f"task stub must hold exactly one line, found {len(dataset)}")
    return datasets.Dataset.from_list(build_rows(dict(dataset[0])))


# ---------------------------------------------------------------------------------------- rendering
def _slice_geometry(doc: dict[str, Any], settings: Settings) -> tuple[tuple[int, int], tuple[float, float]]:
    """(H, W) and header (px_h, px_w) of the slice the model sees, after the explicit reshape."""
    info = volume_info(doc["image_file"], allow_non_ras())
    dim = int(doc["slice_dim"])
    h, w = (s for i, s in enumerate(info.shape) if i != dim)
    px_h, px_w = in_plane_spacing(info.zooms, dim)
    if settings.reshape:
        n = settings.reshape
        return (n, n), (px_h * h / n, px_w * w / n)
    return (h, w), (px_h, px_w)


def render_image(doc: dict[str, Any], settings: Settings) -> Any:
    """The PIL image of a row as the v1 pipeline rendered it (optionally reshaped and HU-windowed)."""
    img = load_slice(doc["image_file"], int(doc["slice_dim"]), int(doc["slice_idx"]), allow_non_ras())
    if settings.reshape:
        img = reshape_slice(img, settings.reshape)
    window = None
    if settings.intensity == "hu_window":
        window = hu_window_for(doc.get("mv_modality", ""), doc.get("mv_label_name"), doc["dataset_name"], doc["taskID"])
    return to_rgb_image(intensity_uint8(img, settings.intensity, window))


@data_errors_end_run
def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    """One RGB PIL image per row."""
    return [render_image(doc, settings_for(doc))]


# ------------------------------------------------------------------------------------------ prompts
def resolve_geometry(settings: Settings, kwargs: dict[str, Any] | None) -> DerivedGeometry | None:
    """Geometry rule and its source: env > active plugin adapter > `geometry` in the model's kwargs block >
    derived from the live stock lmms-eval model (`stock_geometry`); None when none applies."""
    if settings.geometry:
        return DerivedGeometry(settings.geometry, "env:MEDVISION_GEOMETRY")
    active = active_model()
    if active is not None and active.info.get("geometry"):
        return DerivedGeometry(str(active.info["geometry"]), f"adapter:{active.info.get('adapter')}")
    if isinstance(kwargs, dict) and isinstance(kwargs.get("geometry"), str):
        from .settings import host_model_name

        return DerivedGeometry(kwargs["geometry"], f"kwargs:{host_model_name() or 'default'}")
    from .stock_geometry import derive_stock_geometry

    return derive_stock_geometry()


def geometry_rule(settings: Settings, kwargs: dict[str, Any] | None) -> str | None:
    """Geometry rule string in force (see `resolve_geometry`), or None."""
    resolved = resolve_geometry(settings, kwargs)
    return resolved.rule if resolved is not None else None


# lmms-eval passes the kwargs block to doc_to_text only and gives process_results nothing but the doc and the
# response text, so the block last seen per task is kept here for process_results (no value can carry it).
_KWARGS_BY_TASK: dict[str, dict[str, Any] | None] = {}


def prompt_and_geometry(
    doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any] | None]:
    """Prompt text and the geometry record (None for detection) of one row."""
    from .stock_geometry import StockGeometryUnavailable

    settings = settings_for(doc)
    family = doc["mv_family"]
    if family == "detection":
        return build_prompt(doc, settings.prompt_style), None
    task = doc["mv_task"]
    if lmms_eval_specific_kwargs is None:
        lmms_eval_specific_kwargs = _KWARGS_BY_TASK.get(task)
    else:
        _KWARGS_BY_TASK[task] = lmms_eval_specific_kwargs
    try:
        resolved = resolve_geometry(settings, lmms_eval_specific_kwargs)
    except StockGeometryUnavailable as exc:
        raise SettingsError(f"task {task}: {exc}; {GEOMETRY_HELP}.") from None
    if resolved is None:
        raise SettingsError(f"task {task}: the stated pixel size needs the model's image geometry; {GEOMETRY_HELP}.")
    text, record = prompt_for_geometry(doc, settings, resolved.rule, resolved.source)
    if resolved.notes:
        record["notes"] = list(resolved.notes)
    return text, record


def prompt_for_geometry(
    doc: dict[str, Any], settings: Settings, rule: str, source: str | None = None
) -> tuple[str, dict[str, Any]]:
    """T/L and A/D prompt of a row under a known geometry rule (and where it came from), and the geometry record:
    the stated pixel size is the header spacing scaled to what the rule makes the model see, then x k for a
    spacing variant. Shared by the run and by the viewer, which rebuilds prompts from records."""
    from .geometry import perceive_chain

    (h, w), spacing_hw = _slice_geometry(doc, settings)
    perceived, stages = perceive_chain(rule, h, w, fix=settings.perceived_size_fix)
    pw, ph = stated_pixel_size(spacing_hw, (h, w), perceived.content_hw)
    pw, ph = scale_stated(doc, pw, ph)  # spacing variants: x k after every geometry rule
    canvas_h, canvas_w = perceived.canvas_hw
    text = build_prompt(doc, settings.prompt_style, (pw, ph), (canvas_w, canvas_h))
    record = perceived.to_record()
    record.update(
        rule_string=rule,
        source=source,
        input_hw=[h, w],
        spacing_hw=[spacing_hw[0], spacing_hw[1]],
        stated_spacing_wh=[round(pw, 3), round(ph, 3)],
    )
    if (k := spacing_factor(doc)) is not None:
        record["spacing_k"] = k
    if stages:
        record["stages"] = stages
    return text, record


@data_errors_end_run
def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """The v1 or CoT prompt of docs/reference.md §3, with the pixel size the model will perceive."""
    return prompt_and_geometry(doc, lmms_eval_specific_kwargs)[0]


# ------------------------------------------------------------------------------------------ scoring
def doc_to_target(doc: dict[str, Any]) -> list[float]:
    """GT: detection box [x0, y0, x1, y1] relative, origin lower-left; T/L [major, minor] mm; A/D [value]."""
    from medvision_metrics.scores import detection_target

    family = doc["mv_family"]
    if family == "detection":
        boxes = doc["bounding_boxes"]
        return detection_target(doc["image_size_2d"], boxes["min_coords"][0], boxes["max_coords"][0])
    bio = doc["biometric_profile"]
    if family == "tl":
        return scale_target(doc, [float(bio["metric_value_major_axis"][0]), float(bio["metric_value_minor_axis"][0])])
    return scale_target(doc, [float(bio["metric_value"])])


def score_response(doc: dict[str, Any], response: str, settings: Settings) -> dict[str, Any]:
    """Parse and score one response (`medvision_metrics.scoring.score_sample`, also the leaderboard's scorer):
    target, parsed values, success, per-sample metrics, exclusion."""
    switches = ScoringSwitches(
        parse=settings.parse,
        box_fix=settings.box_fix,
        ad_drop_near_zero=settings.ad_drop_near_zero,
        tl_remove_multicluster=settings.tl_remove_multicluster,
    )
    target = doc_to_target(doc)
    where = f"{doc['mv_config']} row {doc.get('mv_row')}"
    scored = score_sample(doc["mv_family"], response, target, switches, doc.get("mv_multicluster_listed"), where)
    return {"target": target, **scored}


def _model_identity() -> dict[str, Any]:
    active = active_model()
    if active is None:
        from .settings import host_model_name

        return {"adapter": host_model_name() or "stock", "pretrained": None, "backend": None, "generation": None}
    info = active.info
    return {
        "adapter": info.get("adapter"),
        "pretrained": info.get("pretrained"),
        "backend": info.get("backend"),
        "generation": info.get("generation"),
    }


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    """Per-metric entries for the aggregations, plus the per-sample record `mv_record` (docs/reference.md §5.7)."""
    settings = settings_for(doc)
    raw = results[0] if results else ""
    response = raw if isinstance(raw, str) else ("" if raw is None else str(raw))
    scored = score_response(doc, response, settings)
    family = doc["mv_family"]
    # doc_to_text already built this prompt for the request, so it cannot fail here for a reason not seen there
    prompt, geometry = prompt_and_geometry(doc, None)
    notes = generation_note(doc["mv_task"], int(doc["mv_row"]))
    bio = doc.get("biometric_profile") if family == "ad" else None
    record = {
        "schema": RECORD_SCHEMA,
        "task": doc["mv_task"],
        "family": family,
        "config": doc["mv_config"],
        "row": int(doc["mv_row"]),
        "dataset": doc["dataset_name"],
        "taskID": doc["taskID"],
        "slice_dim": int(doc["slice_dim"]),
        "slice_idx": int(doc["slice_idx"]),
        "label": doc.get("label"),
        "label_name": doc.get("mv_label_name"),
        "image_file_rel": doc["mv_image_file_rel"],
        "image_size_2d": list(doc["image_size_2d"]),
        "modality": doc.get("mv_modality"),
        "region_label": doc.get("mv_region_label"),
        "region_modality": doc.get("mv_region_modality"),
        "metric_type": bio["metric_type"] if bio else None,
        "metric_key": bio["metric_key"] if bio else None,
        "prompt_sha1": prompt_sha1(prompt) if prompt else None,
        "geometry": geometry,
        "target": scored["target"],
        "response": response,
        "truncated": bool(notes.get("truncated", False)),
        "generation_error": notes.get("error"),
        "parsed": scored["parsed"],
        "success": scored["success"],
        "metrics": scored["metrics"],
        "excluded": scored["excluded"],
        "exclusion_reason": scored["exclusion_reason"],
        "multicluster_listed": doc.get("mv_multicluster_listed"),
        "settings": settings.to_record(),
        "settings_id": settings.settings_id,
        "model": _model_identity(),
        "data_root_kind": doc.get("mv_data_root_kind", "real"),
        "multi_instance": bool(doc.get("mv_multi_instance", False)),
        "plan_version": doc.get("mv_plan_version"),
        "row_source": json.loads(doc["mv_row_source"]) if doc.get("mv_row_source") else None,
        "plugin_version": __version__,
    }
    if (spacing := spacing_record_fields(doc)) is not None:
        record["spacing"] = spacing
    out = metric_entries(family, scored["metrics"], scored["success"], scored["excluded"])
    out["mv_record"] = strict(record)  # strict JSON: NaN -> null, inf -> null + nonfinite flag
    return out


METRIC_SOURCES = {
    "detection": {
        "iou": "iou",
        "f1": "f1",
        "precision": "precision",
        "recall": "recall",
        "success_rate": None,
        "iou_ge_050": "iou",
        "mae_coord": "mae_coord",
    },
    "tl": {"mae": "mae", "mre": "mre", "success_rate": None, "mre_lt_010": "mre"},
}
METRIC_SOURCES["ad"] = METRIC_SOURCES["tl"]


def metric_entries(family: str, metrics: dict[str, Any], success: bool, excluded: bool) -> dict[str, dict[str, Any]]:
    """One `{value, success, excluded}` entry per lmms-eval metric of the family (docs/reference.md §5.7)."""
    out = {}
    for name, source in METRIC_SOURCES[family].items():
        value = float(success) if source is None else metrics.get(source)
        entry: dict[str, Any] = {"value": value, "success": bool(success), "excluded": bool(excluded)}
        if isinstance(value, float) and not math.isfinite(value):
            # strict JSON in the samples file; `_aggregate` restores an infinity from the flag
            entry["value"] = None
            if not math.isnan(value):
                entry["nonfinite"] = "inf" if value > 0 else "-inf"
        out[name] = entry
    return out


# ------------------------------------------------------------------------------- adapter side notes
# lmms-eval hands process_results only the response text (GenerationResult is unwrapped before scoring), so
# a truncation or a generation error reaches the record through this table, keyed by (task, row).
_GENERATION_NOTES: dict[tuple[str, int], dict[str, Any]] = {}


def note_generation(task: str, row: int, *, truncated: bool = False, error: str | None = None) -> None:
    """Adapters report a hit of max_new_tokens or a failed request; the record carries it."""
    _GENERATION_NOTES[(task, row)] = {"truncated": truncated, "error": error}


def generation_note(task: str, row: int) -> dict[str, Any]:
    return _GENERATION_NOTES.get((task, row), {})


# -------------------------------------------------------------------------------------- aggregations
def _aggregate(name: str, items: list[dict[str, Any]]) -> float:
    from medvision_metrics.reduce import reduce_metric

    items = [
        dict(it, value=float(it["nonfinite"])) if isinstance(it, dict) and it.get("nonfinite") else it for it in items
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return reduce_metric(name, items)


def aggregate_iou(items: list[dict[str, Any]]) -> float:
    return _aggregate("iou", items)


def aggregate_f1(items: list[dict[str, Any]]) -> float:
    return _aggregate("f1", items)


def aggregate_precision(items: list[dict[str, Any]]) -> float:
    return _aggregate("precision", items)


def aggregate_recall(items: list[dict[str, Any]]) -> float:
    return _aggregate("recall", items)


def aggregate_success_rate(items: list[dict[str, Any]]) -> float:
    return _aggregate("success_rate", items)


def aggregate_iou_ge_050(items: list[dict[str, Any]]) -> float:
    return _aggregate("iou_ge_050", items)


def aggregate_mae_coord(items: list[dict[str, Any]]) -> float:
    return _aggregate("mae_coord", items)


def aggregate_mae(items: list[dict[str, Any]]) -> float:
    return _aggregate("mae", items)


def aggregate_mre(items: list[dict[str, Any]]) -> float:
    return _aggregate("mre", items)


def aggregate_mre_lt_010(items: list[dict[str, Any]]) -> float:
    return _aggregate("mre_lt_010", items)
