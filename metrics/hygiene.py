"""What the v1 table rules leave out, said out loud; and strict JSON for everything the project writes.

`drop_warnings` lists, per model, every region or label a v1 rule (docs/reference.md §6.2-§6.4) took out of a
table row or out of its error means, and every sample whose per-sample error is not finite (for example a
number too large for float32 in the response), with counts. `strict` turns a value into strict JSON (RFC 8259
has no NaN or Infinity): NaN becomes ``null`` (no value, e.g. no successful parse), and an infinite number
becomes ``null`` with its spelling (``"inf"`` or ``"-inf"``) under the key ``nonfinite`` of the enclosing
object, keyed by the field name (``"ci.MAE[1]"`` for a list element).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

NONFINITE_KEY = "nonfinite"
_SHOWN = 12  # labels named per warning line before "... and N more"


def _is_finite_number(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _spelling(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def strict(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` accepts (see the module doc)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        flags: dict[str, str] = (
            dict(value.get(NONFINITE_KEY) or {}) if isinstance(value.get(NONFINITE_KEY), Mapping) else {}
        )
        for key, item in value.items():
            if key == NONFINITE_KEY and isinstance(item, Mapping):
                continue
            out[str(key)] = _strict_field(item, str(key), flags)
        if flags:
            out[NONFINITE_KEY] = flags
        return out
    if isinstance(value, (list, tuple)):
        return [_strict_field(v, f"[{i}]", None) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _strict_field(value: Any, path: str, flags: dict[str, str] | None) -> Any:
    """Clean one field; record infinities of plain fields and of list elements in ``flags``."""
    if isinstance(value, float) and not math.isfinite(value):
        if flags is not None and not math.isnan(value):
            flags[path] = _spelling(value)
        return None
    if isinstance(value, (list, tuple)) and not isinstance(value, str):
        return [_strict_field(v, f"{path}[{i}]", flags) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return strict(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        return _strict_field(value.item(), path, flags)
    return value


def _names(counts: Mapping[str, int]) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{name} ({n})" for name, n in items[:_SHOWN])
    return shown + (f", ... and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _line(model: str, what: str, counts: Mapping[str, int], unit: str) -> str:
    return f"{model}: {what}: {len(counts)} {unit}(s), {sum(counts.values())} sample(s): {_names(counts)}"


def drop_warnings(
    model: str,
    details: Mapping[str, Sequence[Mapping[str, Any]]],
    families: Mapping[str, Sequence[tuple[Mapping[str, Any], Mapping[str, Any], str]]],
    keys_by_family: Mapping[str, Sequence[str]],
) -> list[str]:
    """Warning lines for one model (see the module doc).

    Args:
        model: the model key.
        details: this model's ``{"detection_regions", "tl_labels", "ad_labels"}`` detail rows.
        families: ``{family: [(record, re-scored sample, where), ...]}``.
        keys_by_family: the region or label key of every item, in the same order.
    """
    out: list[str] = []
    regions = details.get("detection_regions", ())
    excluded = {d["region"]: int(d["samples"]) for d in regions if d.get("excluded_key")}
    if excluded:
        out.append(_line(model, "detection regions left out (Miscellaneous/Others key, v1 rule)", excluded, "region"))
    small = {
        d["region"]: int(d["samples"]) for d in regions if not d.get("excluded_key") and d.get("below_min_group_size")
    }
    if small:
        out.append(
            _line(model, "detection regions left out (fewer samples than the region floor, v1 rule)", small, "region")
        )
    tl_out = {d["label"]: int(d["samples"]) for d in details.get("tl_labels", ()) if not d.get("in_row")}
    if tl_out:
        out.append(
            _line(
                model,
                "T/L labels left out of the tl row, SR and samples included (no success or non-finite MRE, v1 rule)",
                tl_out,
                "label",
            )
        )
    ad_out = {
        d["label"]: int(d["samples"])
        for d in details.get("ad_labels", ())
        if not d.get("in_error_means") or not all(_is_finite_number(d.get(c)) for c in ("MAE", "MRE"))
    }
    if ad_out:
        out.append(
            _line(
                model,
                "A/D labels left out of the MAE/MRE means but kept in SR (no success or non-finite error, v1 rule)",
                ad_out,
                "label",
            )
        )
    for family, items in families.items():
        keys = keys_by_family.get(family, ())
        bad: dict[str, int] = {}
        example = ""
        for key, (_record, sample, where) in zip(keys, items):
            if not sample.get("success") or sample.get("excluded"):
                continue
            values = (sample.get("metrics") or {}).values()
            if any(isinstance(v, float) and math.isinf(v) for v in values):
                bad[key] = bad.get(key, 0) + 1
                example = example or where
        if bad:
            unit = "region" if family == "detection" else "label"
            out.append(
                _line(model, f"{family} samples with a non-finite error (e.g. {example})", bad, unit)
                + "; a number beyond float32 in the response makes the error infinite"
            )
        reasons: dict[str, int] = {}
        for _record, sample, _where in items:
            if sample.get("excluded"):
                reason = str(sample.get("exclusion_reason"))
                reasons[reason] = reasons.get(reason, 0) + 1
        for reason, n in sorted(reasons.items()):
            out.append(f"{model}: {family}: {n} sample(s) excluded by {reason}")
    return out


ROW_SOURCE_FIELDS = ("kind", "plan_file", "plan_version", "plan_sha256", "arrow_name")


def row_source_signature(source: Any) -> str | None:
    """The comparable part of a record's ``row_source`` as canonical JSON (machine paths left out), or None."""
    if not isinstance(source, Mapping):
        return None
    view = {name: source.get(name) for name in ROW_SOURCE_FIELDS}
    overrides = source.get("overrides")
    view["overrides"] = (
        {"sha256": overrides.get("sha256"), "changed": overrides.get("changed")}
        if isinstance(overrides, Mapping)
        else None
    )
    return json.dumps(view, sort_keys=True)


def check_row_sources(records: Sequence[Mapping[str, Any]], allow_mixed: bool, warnings: list[str]) -> None:
    """Records of one config must share their row source (plan file and hash, Arrow build, plan overrides).

    Raises:
        RecordError: naming the config and each source with its models, unless ``allow_mixed`` (then a warning).
    """
    from .errors import RecordError

    by_config: dict[str, dict[str, set[str]]] = {}
    unrecorded = 0
    for record in records:
        sig = row_source_signature(record.get("row_source"))
        if sig is None:
            unrecorded += 1
            continue
        model = str((record.get("model") or {}).get("adapter"))
        by_config.setdefault(str(record["config"]), {}).setdefault(sig, set()).add(model)
    problems = []
    for config, seen in sorted(by_config.items()):
        if len(seen) > 1:
            listed = " vs ".join(f"{sig} (model {', '.join(sorted(models))})" for sig, models in seen.items())
            problems.append(f"{config} was evaluated on different rows: {listed}")
    if unrecorded and by_config:
        warnings.append(
            f"{unrecorded} record(s) carry no row_source (written by an older plugin); their rows cannot be "
            "checked against the others"
        )
    if not problems:
        return
    message = "; ".join(problems)
    if not allow_mixed:
        raise RecordError(
            f"{message}; records whose row source (plan file, Arrow build or MEDVISION_PLAN_OVERRIDES) differs "
            "are not comparable: evaluate every model on the same rows or pass --allow-mixed"
        )
    warnings.append(f"mixed row sources accepted (--allow-mixed): {message}")
