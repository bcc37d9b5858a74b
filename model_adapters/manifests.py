"""Entry point `lmms_eval.models: medvision` (docs/reference.md §0.4): data only, import-light.

Importing this module imports nothing heavy (no torch, transformers or lmms_eval.models, which is
mid-import when entry points load). Calling `manifests()` builds the ModelManifest objects and installs
the zero-flag task hook.
"""

from __future__ import annotations

from typing import Any

from medvision_tasks.notices import warn

from .profiles import PROFILES

# --model name -> class path (strings, so nothing is imported until a model is resolved): the three CPU
# baselines, then one adapter per model profile (profiles.py is the only model table).
BASELINE_CLASSES: dict[str, str] = {
    "medvision_random": "medvision_adapters.baselines.RandomBaseline",
    "medvision_prior": "medvision_adapters.baselines.PriorBaseline",
    "medvision_replay": "medvision_adapters.baselines.ReplayModel",
}
ADAPTER_CLASSES: dict[str, str] = {
    **BASELINE_CLASSES,
    **{name: profile.class_path for name, profile in PROFILES.items()},
}


def manifests() -> list[Any]:
    """One ModelManifest per plugin model; also installs the zero-flag task hook."""
    from lmms_eval.models.registry_v2 import ModelManifest

    try:
        from medvision_tasks.taskhook import install

        install()
    except Exception as exc:  # never take the other plugin models down with the hook
        warn(f"medvision: task hook not installed ({exc}); pass --include_path.", stacklevel=2)
    return [ModelManifest(model_id=name, simple_class_path=path) for name, path in ADAPTER_CLASSES.items()]
