"""Switches (docs/reference.md §0.5): environment, active-adapter defaults, task-variant defaults, global defaults.

Settings are resolved once per subtask, frozen, and travel inside every per-sample record. This is the
only module that reads MedVision environment variables.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medvision_metrics.options import bool_word, did_you_mean

from .errors import SettingsError
from .notices import warn

PARSE_MODES = ("last_k", "answer_tag")
INTENSITY_MODES = ("minmax", "hu_window")
PROMPT_STYLES = ("v1", "cot")
DEFAULT_SAMPLE_CAP = 1000
DEFAULT_PLANNER_VERSION = "1.0.0"

# setting name -> (MEDVISION_ spelling, official spelling or None)
ENV_NAMES: dict[str, tuple[str, str | None]] = {
    "data_dir": ("MEDVISION_DATA_DIR", "MedVision_DATA_DIR"),
    "planner_version": ("MEDVISION_PLANNER_VERSION", "MedVision_PLANNER_VERSION"),
    "disable_filtering": ("MEDVISION_DISABLE_SAMPLE_FILTERING", "MedVision_DISABLE_SAMPLE_FILTERING"),
    "sample_cap": ("MEDVISION_SAMPLE_CAP", None),
    "cache_dir": ("MEDVISION_CACHE_DIR", None),
    "intensity": ("MEDVISION_INTENSITY", None),
    "perceived_size_fix": ("MEDVISION_PERCEIVED_SIZE_FIX", None),
    "geometry": ("MEDVISION_GEOMETRY", None),
    "parse": ("MEDVISION_PARSE", None),
    "box_fix": ("MEDVISION_BOX_FIX", None),
    "ad_drop_near_zero": ("MEDVISION_AD_DROP_NEAR_ZERO", None),
    "tl_remove_multicluster": ("MEDVISION_TL_REMOVE_MULTICLUSTER", None),
    "prompt_style": ("MEDVISION_PROMPT_STYLE", None),
    "reshape": ("MEDVISION_RESHAPE", None),
    "allow_non_ras": ("MEDVISION_ALLOW_NON_RAS", None),
    "volume_cache_mb": ("MEDVISION_VOLUME_CACHE_MB", None),
    "volume_cache_items": ("MEDVISION_VOLUME_CACHE", None),
    # row sources, plan overrides and the row cache (parsed by arrow_rows.RowSources.from_env;
    # docs/reference.md §1.3, §1.6, §1.11)
    "arrow_dir": ("MEDVISION_ARROW_DIR", None),
    "arrow_map": ("MEDVISION_ARROW_MAP", None),
    "path_remap": ("MEDVISION_PATH_REMAP", None),
    "plan_overrides": ("MEDVISION_PLAN_OVERRIDES", None),
    "row_cache": ("MEDVISION_ROW_CACHE", None),
    "skip_missing": ("MEDVISION_SKIP_MISSING", None),
    "demo_dir": ("MEDVISION_DEMO_DIR", None),
    "no_task_hook": ("MEDVISION_NO_TASK_HOOK", None),
    "journal_dir": ("MEDVISION_JOURNAL_DIR", None),
}



def env_value(variable: str) -> str | None:
    """One environment variable; a variable set to an empty string counts as unset. With `read_env_pair`,
    the plugin's only reader of the environment (host launch variables included)."""
    return os.environ.get(variable) or None


def read_env_pair(ours: str, official: str | None) -> str | None:
    """A value given in two spellings; the MEDVISION_ one wins, with a warning when both are set and differ."""
    value = env_value(ours)
    other = env_value(official) if official else None
    if value is not None and other is not None and value != other:
        warn(f"{ours}={value!r} and {official}={other!r} differ; using {ours}.", stacklevel=3)
    return value if value is not None else other


def read_env(name: str) -> str | None:
    """Value of a setting's environment variable (`ENV_NAMES`); the MEDVISION_ spelling wins."""
    return read_env_pair(*ENV_NAMES[name])


def launch_ranks() -> tuple[int, int]:
    """(world size, local rank) of a multi-process launch (`accelerate launch`/torchrun set WORLD_SIZE and
    LOCAL_RANK); (1, 0) otherwise."""
    return int(env_value("WORLD_SIZE") or 1), int(env_value("LOCAL_RANK") or 0)


def parse_bool(name: str, text: str) -> bool:
    """Parse a 0/1/true/false switch value, naming the variable on error."""
    value = False if not text.strip() else bool_word(text)  # an empty variable is off
    if value is None:
        raise SettingsError(f"{name}={text!r}: expected one of 0, 1, true, false.")
    return value


def look_up_option(name: str, value: str, options: tuple[str, ...]) -> str:
    """Return value when it is a valid option, else raise naming the closest valid spelling."""
    if value in options:
        return value
    raise SettingsError(
        f"{name}={value!r} is not valid; choose one of {', '.join(options)}.{did_you_mean(value, options)}"
    )


def cache_dir() -> Path:
    """The plugin's cache folder (MEDVISION_CACHE_DIR, default ~/.cache/medvision_eval)."""
    value = read_env("cache_dir")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "medvision_eval"


def data_dir_from_env() -> str | None:
    """The data root named by MEDVISION_DATA_DIR (or MedVision_DATA_DIR), if any."""
    return read_env("data_dir")


@dataclass(frozen=True)
class Settings:
    """Frozen switches of one subtask; recorded in every per-sample record."""

    intensity: str = "minmax"
    perceived_size_fix: bool = False
    geometry: str | None = None
    parse: str = "last_k"
    box_fix: bool = False
    ad_drop_near_zero: bool = False
    tl_remove_multicluster: bool = False
    planner_version: str = DEFAULT_PLANNER_VERSION
    sample_cap: int = DEFAULT_SAMPLE_CAP
    prompt_style: str = "v1"
    reshape: int | None = None
    filtering: bool = True

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def settings_id(self) -> str:
        blob = json.dumps(self.to_record(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class ActiveModel:
    """What the active plugin adapter registered (docs/reference.md §7.1)."""

    info: dict[str, Any] = field(default_factory=dict)
    task_defaults: dict[str, Any] = field(default_factory=dict)


_ACTIVE: ActiveModel | None = None
_FROZEN: dict[str, Settings] = {}
_HOST_MODEL: dict[str, str | None] = {"name": None}


def note_host_model(name: str | None) -> None:
    """The lmms-eval `--model` name, seen by the task hook; identifies stock models in records."""
    _HOST_MODEL["name"] = name


def host_model_name() -> str | None:
    return _HOST_MODEL["name"]


def register_active_model(info: dict[str, Any], task_defaults: dict[str, Any] | None = None) -> None:
    """Called by plugin adapters in __init__: identity, geometry, generation and task-setting defaults."""
    global _ACTIVE
    unknown = set(task_defaults or {}) - set(Settings.__dataclass_fields__)
    if unknown:
        raise SettingsError(f"unknown task-setting defaults {sorted(unknown)}")
    _ACTIVE = ActiveModel(dict(info), dict(task_defaults or {}))
    _FROZEN.clear()


def active_model() -> ActiveModel | None:
    """The registered plugin adapter, or None for stock lmms-eval models."""
    return _ACTIVE


def reset() -> None:
    """Forget the active model and frozen settings (tests)."""
    global _ACTIVE
    _ACTIVE = None
    _FROZEN.clear()


def _env_overrides() -> dict[str, Any]:
    out: dict[str, Any] = {}
    if (v := read_env("intensity")) is not None:
        out["intensity"] = look_up_option("MEDVISION_INTENSITY", v.strip(), INTENSITY_MODES)
    if (v := read_env("perceived_size_fix")) is not None:
        out["perceived_size_fix"] = parse_bool("MEDVISION_PERCEIVED_SIZE_FIX", v)
    if (v := read_env("geometry")) is not None and v.strip():
        out["geometry"] = v.strip()
    if (v := read_env("parse")) is not None:
        out["parse"] = look_up_option("MEDVISION_PARSE", v.strip(), PARSE_MODES)
    for key in ("box_fix", "ad_drop_near_zero", "tl_remove_multicluster"):
        if (v := read_env(key)) is not None:
            out[key] = parse_bool(ENV_NAMES[key][0], v)
    if (v := read_env("planner_version")) is not None:
        out["planner_version"] = v.strip()
    if (v := read_env("disable_filtering")) is not None:
        out["filtering"] = not parse_bool("MedVision_DISABLE_SAMPLE_FILTERING", v)
    if (v := read_env("sample_cap")) is not None:
        try:
            cap = int(v)
        except ValueError:
            raise SettingsError(f"MEDVISION_SAMPLE_CAP={v!r}: expected an integer (0 = no cap).") from None
        if cap < 0:
            raise SettingsError(f"MEDVISION_SAMPLE_CAP={v!r}: must be >= 0 (0 = no cap).")
        out["sample_cap"] = cap
    if (v := read_env("prompt_style")) is not None:
        out["prompt_style"] = look_up_option("MEDVISION_PROMPT_STYLE", v.strip(), PROMPT_STYLES)
    if (v := read_env("reshape")) is not None:
        out["reshape"] = int(v) if v.strip() not in ("", "0", "none") else None
    return out


def resolve_settings(
    task: str, variant: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Resolve and freeze the settings of one subtask (overrides > env > adapter > task variant > global).

    `overrides` are values a command states explicitly (e.g. `export-requests --geometry`); they apply only
    when this call is the one that freezes the subtask's settings.
    """
    if task in _FROZEN:
        return _FROZEN[task]
    variant = variant or {}
    values: dict[str, Any] = {}
    style = variant.get("prompt_style", "v1")
    values["prompt_style"] = style
    values["parse"] = "answer_tag" if style == "cot" else "last_k"
    if variant.get("reshape"):
        values["reshape"] = int(variant["reshape"])
    if _ACTIVE is not None:
        defaults = dict(_ACTIVE.task_defaults)
        # A resolution variant's explicit N x N keeps its size; the adapter's own reshape applies otherwise.
        if variant.get("reshape"):
            defaults.pop("reshape", None)
        if defaults.get("prompt_style") == "cot" and "parse" not in defaults:
            defaults["parse"] = "answer_tag"
        values.update(defaults)
    env = _env_overrides()
    if "prompt_style" in env and "parse" not in env:
        env["parse"] = "answer_tag" if env["prompt_style"] == "cot" else "last_k"
    values.update(env)
    values.update(overrides or {})
    settings = Settings(**values)
    _FROZEN[task] = settings
    return settings


def allow_non_ras() -> bool:
    """MEDVISION_ALLOW_NON_RAS=1 turns the orientation error into a warning."""
    v = read_env("allow_non_ras")
    return parse_bool("MEDVISION_ALLOW_NON_RAS", v) if v is not None else False


def volume_cache_bytes() -> int:
    """Byte budget of the decoded-volume LRU cache (MEDVISION_VOLUME_CACHE_MB, default 512)."""
    v = read_env("volume_cache_mb")
    try:
        return int(float(v) * 2**20) if v else 512 * 2**20
    except ValueError:
        raise SettingsError(f"MEDVISION_VOLUME_CACHE_MB={v!r}: expected a number of MiB.") from None


def volume_cache_items() -> int | None:
    """Optional cap on the number of cached volumes (MEDVISION_VOLUME_CACHE, docs/reference.md §1.11); None = bytes
    only."""
    v = read_env("volume_cache_items")
    if v is None or not v.strip():
        return None
    try:
        count = int(v)
    except ValueError:
        count = 0
    if count < 1:
        raise SettingsError(f"MEDVISION_VOLUME_CACHE={v!r}: expected a number of volumes >= 1.")
    return count


def skip_missing() -> bool:
    """MEDVISION_SKIP_MISSING=1: subtasks whose dataset is absent are skipped (and recorded) instead of failing."""
    v = read_env("skip_missing")
    return parse_bool("MEDVISION_SKIP_MISSING", v) if v is not None else False
