"""Baselines that need no GPU (docs/reference.md §7.5): seeded random answers, Train-split priors, saved responses."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from loguru import logger

from medvision_tasks.data import parse_config_name
from medvision_tasks.hooks import doc_to_target, resolve_data_root
from medvision_tasks.render import in_plane_spacing, volume_info
from medvision_tasks.row_cache import rows_for_config
from medvision_tasks.settings import allow_non_ras

from .base import MedVisionModel
from .errors import AdapterConfigError

FALLBACK_BOX = (0.25, 0.25, 0.75, 0.75)
FALLBACK_TL = (20.0, 10.0)
FALLBACK_AD = {"distance": 50.0, "angle": 45.0}


def seeded_rng(seed: int, config: str, row: int) -> random.Random:
    """random.Random seeded by the first 8 bytes (big-endian) of SHA-256 of `seed|config|row`."""
    digest = hashlib.sha256(f"{seed}|{config}|{row}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def physical_diagonal_mm(doc: dict[str, Any]) -> float:
    """sqrt((H*px_h)^2 + (W*px_w)^2) of the original slice with header spacing."""
    info = volume_info(doc["image_file"], allow_non_ras())
    dim = int(doc["slice_dim"])
    h, w = (s for i, s in enumerate(info.shape) if i != dim)
    px_h, px_w = in_plane_spacing(info.zooms, dim)
    return math.hypot(h * px_h, w * px_w)


def format_box(box: tuple[float, float, float, float] | list[float]) -> str:
    return ", ".join(f"{v:.6f}" for v in box)


class RandomBaseline(MedVisionModel):
    """`--model medvision_random [--model_args seed=1234]`: the paper's random box; random sizes for T/L, A/D."""

    adapter_name = "medvision_random"
    extra_args = ("seed",)
    journaled = False  # computed from the doc in microseconds: a journal write would cost more

    def __init__(self, seed: int | str = 1234, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            self.seed = int(seed)
        except ValueError:
            raise AdapterConfigError(f"--model medvision_random: seed={seed!r} is not an integer.") from None
        self.register({"seed": self.seed})

    def respond(self, doc: dict[str, Any], prompt: str, gen_kwargs: dict[str, Any], doc_to_visual: Any) -> str:
        rng = seeded_rng(self.seed, doc["mv_config"], int(doc["mv_row"]))
        family = doc["mv_family"]
        if family == "detection":
            height, width = (int(v) for v in doc["image_size_2d"])
            w = rng.randint(1, width)
            h = rng.randint(1, height)
            x1 = rng.randint(0, width - w)
            y1 = rng.randint(0, height - h)
            return format_box((x1 / width, y1 / height, (x1 + w) / width, (y1 + h) / height))
        diagonal = physical_diagonal_mm(doc)
        if family == "tl":
            major = rng.uniform(1.0, diagonal)
            minor = rng.uniform(1.0, major)
            return f"{major:.2f}, {minor:.2f}"
        if doc["biometric_profile"]["metric_type"] == "angle":
            return f"{rng.uniform(0.0, 90.0):.2f}"
        return f"{rng.uniform(0.0, diagonal):.2f}"


def _mean(values: list[list[float]]) -> list[float]:
    return [sum(col) / len(col) for col in zip(*values)]


def compute_priors(root: Path, config: str, planner_version: str = "1.0.0", filtering: bool = True) -> dict[str, Any]:
    """Train-split means of one config (no cap, no image reads): per key and for the whole config."""
    train = parse_config_name(config).with_split("Train").config
    rows = rows_for_config(root, train, planner_version=planner_version, filtering=filtering, cap=0)
    groups: dict[str, list[list[float]]] = defaultdict(list)
    everything: list[list[float]] = []
    for row in rows:
        row = dict(row, mv_family=parse_config_name(config).family)
        target = doc_to_target(row)
        groups[prior_key(row)].append(target)
        everything.append(target)
    return {
        "config": config,
        "train_rows": len(rows),
        "by_key": {k: _mean(v) for k, v in sorted(groups.items())},
        "config_mean": _mean(everything) if everything else None,
    }


def prior_key(doc: dict[str, Any]) -> str:
    """Detection: dataset/task/plane/label; T/L: the config; A/D: dataset/plane/metric type/metric key."""
    family = doc["mv_family"]
    if family == "detection":
        return f"{doc['dataset_name']}|{doc['taskID']}|{doc['slice_dim']}|{doc['label']}"
    if family == "tl":
        return "config"
    bio = doc["biometric_profile"]
    return f"{doc['dataset_name']}|{doc['slice_dim']}|{bio['metric_type']}|{bio['metric_key']}"


class PriorBaseline(MedVisionModel):
    """`--model medvision_prior`: per-label Train-split means (box, axes, measurement)."""

    adapter_name = "medvision_prior"
    journaled = False  # depends on the Train split, which no request identity covers; recomputed instantly

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._priors: dict[str, dict[str, Any]] = {}
        self.register({"statistic": "train_mean"})

    def priors_for(self, doc: dict[str, Any]) -> dict[str, Any]:
        from medvision_tasks.hooks import settings_for

        config = doc["mv_config"]
        if config not in self._priors:
            s = settings_for(doc)
            root = resolve_data_root(doc.get("mv_data_root_kind", "real"))
            self._priors[config] = compute_priors(root, config, s.planner_version, s.filtering)
        return self._priors[config]

    def respond(self, doc: dict[str, Any], prompt: str, gen_kwargs: dict[str, Any], doc_to_visual: Any) -> str:
        priors = self.priors_for(doc)
        value = priors["by_key"].get(prior_key(doc)) or priors["config_mean"]
        family = doc["mv_family"]
        if family == "detection":
            return format_box(value or FALLBACK_BOX)
        if family == "tl":
            major, minor = value or FALLBACK_TL
            return f"{major:.2f}, {minor:.2f}"
        fallback = [FALLBACK_AD[doc["biometric_profile"]["metric_type"]]]
        return f"{(value or fallback)[0]:.2f}"


def load_responses(path: str | Path) -> dict[tuple[str, int], str]:
    """(config, row) -> response from plugin samples files or simple `{config, row, response}` JSONL.

    A line that also names its `task` is stored under (task, row) as well, so that tasks sharing a config (the
    spacing variants and their base subtask) can replay different responses; (task, row) is looked up first.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise AdapterConfigError(f"--model medvision_replay: path={path} does not exist; give a JSONL file or folder.")
    files = sorted(p.rglob("*.jsonl")) if p.is_dir() else [p]
    if not files:
        raise AdapterConfigError(f"--model medvision_replay: no .jsonl file under {p}.")
    out: dict[tuple[str, int], str] = {}
    for file in files:
        with open(file, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise AdapterConfigError(
                        f"{file}:{lineno}: not valid JSON ({exc.msg}); fix or remove the line."
                    ) from None
                src = item.get("mv_record", item) if isinstance(item, dict) else None
                if not isinstance(src, dict) or not {"config", "row", "response"} <= set(src):
                    raise AdapterConfigError(
                        f"{file}:{lineno}: expected a samples line with mv_record or an object with config, row and "
                        "response."
                    )
                if not isinstance(src["response"], str) or not isinstance(src["row"], int):
                    raise AdapterConfigError(f"{file}:{lineno}: row must be an integer and response a string.")
                out[(str(src["config"]), int(src["row"]))] = src["response"]
                if isinstance(src.get("task"), str) and src["task"]:
                    out[(src["task"], int(src["row"]))] = src["response"]
    return out


class ReplayModel(MedVisionModel):
    """`--model medvision_replay --model_args path=FILE_OR_DIR`: returns saved responses; missing ones are ''.

    `as_adapter=medvision_huatuogpt_vision` (with optional `pretrained=`) attributes the replayed responses to
    that model in the records, so the leaderboard rows carry its model key instead of `replay`.
    """

    adapter_name = "medvision_replay"
    extra_args = ("path", "geometry", "as_adapter")
    uses_images = False  # answers come from the saved file: the journal keys on the doc and the file's content

    def __init__(
        self, path: str | None = None, geometry: str | None = None, as_adapter: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not path:
            raise AdapterConfigError("--model medvision_replay needs --model_args path=FILE_OR_DIR (JSONL).")
        self.responses = load_responses(path)
        self.path = str(path)
        self.missing = 0
        if geometry:
            from medvision_tasks.geometry import parse_geometry

            parse_geometry(geometry)
            self.geometry = geometry
        if as_adapter:
            if not as_adapter.startswith("medvision_"):
                raise AdapterConfigError(
                    f"--model medvision_replay: as_adapter={as_adapter!r} must name a medvision_* adapter "
                    "(e.g. medvision_huatuogpt_vision)."
                )
            self.adapter_name = as_adapter
            self.backend = self.backend or "replay"
        else:
            self.pretrained = self.pretrained or self.path
        self.register({"source": self.path, "replayed": True})
        from .run_name import name_replay_run, replay_run_name

        name_replay_run(self.path, replay_run_name(self.path, as_adapter))

    def extra_identity(self) -> dict[str, Any]:
        from .journal import fingerprint

        return {"responses_sha256": fingerprint(sorted([list(k), v] for k, v in self.responses.items()))}

    def respond(self, doc: dict[str, Any], prompt: str, gen_kwargs: dict[str, Any], doc_to_visual: Any) -> str:
        row = int(doc["mv_row"])
        by_task = self.responses.get((doc["mv_task"], row))
        if by_task is not None:
            return by_task
        key = (doc["mv_config"], row)
        if key not in self.responses:
            self.missing += 1
            return ""
        return self.responses[key]

    def generate_until(self, requests: list[Any]) -> list[str]:
        before = self.missing
        out = super().generate_until(requests)
        if self.missing > before:
            logger.warning(
                f"medvision_replay: {self.missing - before} of {len(requests)} request(s) had no saved response in "
                f"{self.path}; they count as failed parses."
            )
        return out
