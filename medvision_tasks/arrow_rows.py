"""Rows from an official Arrow build (docs/reference.md §1.6): MEDVISION_ARROW_DIR / MEDVISION_ARROW_MAP with
MEDVISION_PATH_REMAP, the row sources in force (`RowSources`), and `rows_for_subtask`, which takes Arrow rows
when a source names the config and plan rows (through the row cache) otherwise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import (
    _BOX_KEYS,
    _TL_KEYS,
    OFFICIAL_FIELDS,
    PATH_FIELDS,
    ConfigName,
    Overrides,
    _ad_profile,
    _finish_row,
    _plan_context,
    _PlanContext,
    _require_finite,
    f16,
    parse_config_name,
    parse_plan_overrides,
    resolve_data_path,
)
from .errors import PlanError, SettingsError
from .row_cache import rows_for_config


def parse_path_remap(text: str | None) -> tuple[tuple[str, str], ...]:
    """Parse MEDVISION_PATH_REMAP `old_prefix=new_prefix[;...]` (longest prefix first)."""
    pairs = []
    for part in (text or "").split(";"):
        part = part.strip()
        if not part:
            continue
        old, sep, new = part.partition("=")
        if not sep or not old:
            raise SettingsError(
                f"MEDVISION_PATH_REMAP: {part!r} is not old_prefix=new_prefix; separate several pairs with ';'."
            )
        pairs.append((old, new))
    return tuple(sorted(pairs, key=lambda p: -len(p[0])))


def remap_path(value: str, remaps: tuple[tuple[str, str], ...]) -> str:
    """Replace the first (longest) matching prefix of `value`."""
    for old, new in remaps:
        if value.startswith(old):
            return new + value[len(old) :]
    return value


@dataclass
class RowSources:
    """Where rows come from besides the plans (docs/reference.md §1.6), the plan overrides and the row-cache folder."""

    arrow_dir: Path | None = None
    arrow_map: dict[str, Path] = field(default_factory=dict)
    path_remap: tuple[tuple[str, str], ...] = ()
    overrides: Overrides = field(default_factory=dict)
    cache_dir: Path | None = None

    @classmethod
    def from_env(cls) -> RowSources:
        """MEDVISION_ARROW_DIR / _ARROW_MAP / _PATH_REMAP / _PLAN_OVERRIDES / _CACHE_DIR / _ROW_CACHE."""
        from .settings import cache_dir, parse_bool, read_env

        arrow_dir = read_env("arrow_dir")
        if arrow_dir and not Path(arrow_dir).expanduser().is_dir():
            raise SettingsError(
                f"MEDVISION_ARROW_DIR={arrow_dir!r} is not a folder; point it at the folder holding one "
                "datasets.save_to_disk folder per config name, or unset it."
            )
        use_cache = read_env("row_cache")
        enabled = True if use_cache is None else parse_bool("MEDVISION_ROW_CACHE", use_cache)
        return cls(
            arrow_dir=Path(arrow_dir).expanduser() if arrow_dir else None,
            arrow_map=parse_arrow_map(read_env("arrow_map")),
            path_remap=parse_path_remap(read_env("path_remap")),
            overrides=parse_plan_overrides(read_env("plan_overrides")),
            cache_dir=cache_dir() if enabled else None,
        )

    def arrow_source(self, config: str) -> Path | None:
        """The Arrow folder or file of a config: the map first, then `<arrow_dir>/<config>`; None when absent."""
        if config in self.arrow_map:
            path = self.arrow_map[config]
            if not path.exists():
                raise PlanError(f"MEDVISION_ARROW_MAP: {config} -> {path} does not exist; fix the map entry.")
            return path
        if self.arrow_dir is not None and (self.arrow_dir / config).exists():
            return self.arrow_dir / config
        return None


def parse_arrow_map(text: str | None) -> dict[str, Path]:
    """Parse MEDVISION_ARROW_MAP (a JSON file or inline JSON `{config: path}`; relative paths follow the file)."""
    if not text or not text.strip():
        return {}
    raw, base, source = text.strip(), Path.cwd(), "MEDVISION_ARROW_MAP"
    if not raw.startswith("{"):
        path = Path(raw).expanduser()
        if not path.is_file():
            raise SettingsError(f"MEDVISION_ARROW_MAP={text!r}: file not found; expected a JSON {{config: path}} file.")
        raw, base, source = path.read_text(encoding="utf-8"), path.parent, str(path)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{source}: invalid JSON ({exc}); expected {{config: path}}.") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise SettingsError(f"{source}: expected a JSON object {{config: path-to-save_to_disk-folder-or-.arrow}}.")
    for config in data:
        parse_config_name(config)
    return {config: (base / Path(value).expanduser()) for config, value in data.items()}


def read_arrow_table(source: Path, cfg: ConfigName) -> Any:
    """A `datasets.Dataset` from a save_to_disk folder (Dataset or one-split DatasetDict) or an .arrow file."""
    import datasets

    source = Path(source)
    try:
        if source.is_dir():
            table = datasets.load_from_disk(str(source))
            if isinstance(table, datasets.DatasetDict):
                split = cfg.split.lower()
                if split in table:
                    table = table[split]
                elif len(table) == 1:
                    table = next(iter(table.values()))
                else:
                    raise PlanError(
                        f"{source}: DatasetDict with splits {list(table)}; expected one or a {split!r} one."
                    )
            return table
        if source.is_file() and source.suffix == ".arrow":
            return datasets.Dataset.from_file(str(source))
    except PlanError:
        raise
    except (OSError, ValueError) as exc:
        raise PlanError(
            f"{source}: cannot read Arrow rows for {cfg.config} ({exc}); expected a datasets.save_to_disk folder "
            "or an .arrow file."
        ) from exc
    raise PlanError(f"{source}: not a save_to_disk folder or an .arrow file (config {cfg.config}).")


def _stored_official(ctx: _PlanContext, stored: dict[str, Any], remaps: tuple[tuple[str, str], ...], where: str):
    """Official fields of one stored row, normalised like plan rows (float16, ints, local paths)."""
    cfg = ctx.cfg
    out = {k: stored[k] for k in OFFICIAL_FIELDS if stored.get(k) is not None}
    missing = [k for k in ("dataset_name", "image_file", "slice_dim", "slice_idx", "image_size_2d") if k not in out]
    if missing:
        raise PlanError(f"{where}: missing official field(s) {missing}; is this an official MedVision Arrow build?")
    if out["dataset_name"] != cfg.dataset or int(out["slice_dim"]) != cfg.slice_dim:
        raise PlanError(
            f"{where}: row of {out['dataset_name']} slice_dim {out['slice_dim']} found in the Arrow rows of "
            f"{cfg.config}; check MEDVISION_ARROW_DIR/MEDVISION_ARROW_MAP."
        )
    image_rel = ""
    for key in PATH_FIELDS:
        if key in out:
            path, rel = resolve_data_path(ctx.root, cfg.dataset, remap_path(str(out[key]), remaps), f"{where} {key}")
            out[key] = str(path)
            image_rel = rel if key == "image_file" else image_rel
    for key in ("slice_dim", "slice_idx"):
        out[key] = int(out[key])
    for key in ("image_size_2d", "image_size_3d"):
        if key in out:
            out[key] = [int(v) for v in out[key]]
    for key in ("pixel_size", "voxel_size"):
        if key in out:
            out[key] = [f16(v) for v in out[key]]
    if "label" in out:
        out["label"] = int(np.uint16(out["label"]))
    if "bounding_boxes" in out:
        boxes = out["bounding_boxes"]
        casts = {"center_coords": float, "sizes": f16}
        out["bounding_boxes"] = {
            k: [[casts.get(k, int)(c) for c in box] for box in boxes[k]] for k in _BOX_KEYS if k in boxes
        }
    if "biometric_profile" in out:
        bio = out["biometric_profile"]
        if cfg.family == "tl":
            out["biometric_profile"] = {
                k: [f16(v) for v in bio[k]] if k.startswith("metric_value") else list(bio[k])
                for k in _TL_KEYS
                if k in bio
            }
        else:
            out["biometric_profile"] = _ad_profile(bio, cfg.slice_dim)
        bio = out["biometric_profile"]
        values = (
            [bio["metric_value"]]
            if cfg.family == "ad"
            else [v for k, vs in bio.items() if k.startswith("metric_value") for v in vs]
        )
        _require_finite(values, "metric_value", where)
    if "voxel_size" in out:
        _require_finite(out["voxel_size"], "voxel_size", where)
    return out, image_rel


def iter_arrow_rows(
    root: Path,
    config: str,
    source: Path,
    *,
    planner_version: str = "1.0.0",
    filtering: bool = True,
    cap: int = 0,
    remaps: tuple[tuple[str, str], ...] = (),
    overrides: Overrides | None = None,
) -> Iterator[dict[str, Any]]:
    """Rows of one config from an Arrow build, in stored order, capped; mv_* fields still come from the plans."""
    cfg = parse_config_name(config)
    ctx = _plan_context(Path(root), cfg, planner_version, filtering, overrides)
    table = read_arrow_table(source, cfg)
    count = len(table) if not cap else min(cap, len(table))
    for i, stored in enumerate(table.select(range(count)) if count < len(table) else table):
        where = f"{source} row {i}"
        official, image_rel = _stored_official(ctx, stored, remaps, where)
        row = _finish_row(ctx, official, image_rel, where)
        row["mv_row"] = i
        yield row


def rows_for_subtask(
    root: Path, config: str, settings: Any, sources: RowSources | None = None, *, use_arrow: bool = True
) -> list[dict[str, Any]]:
    """Rows of one subtask: Arrow rows when a source names the config (docs/reference.md §1.6), else plan rows (cached).

    `settings` is the subtask's frozen `Settings` (planner_version, filtering, sample_cap are read);
    `sources` defaults to `RowSources.from_env()`; `use_arrow=False` ignores Arrow sources (demo root).
    """
    sources = sources if sources is not None else RowSources.from_env()
    arrow = sources.arrow_source(config) if use_arrow else None
    if arrow is not None:
        return list(
            iter_arrow_rows(
                root,
                config,
                arrow,
                planner_version=settings.planner_version,
                filtering=settings.filtering,
                cap=settings.sample_cap,
                remaps=sources.path_remap,
                overrides=sources.overrides,
            )
        )
    return rows_for_config(
        root,
        config,
        planner_version=settings.planner_version,
        filtering=settings.filtering,
        cap=settings.sample_cap,
        overrides=sources.overrides,
        cache_dir=sources.cache_dir,
    )
