"""Entry point `lmms_eval.models: medvision` (docs/reference.md §0.4): data only, import-light.

Importing this module imports nothing heavy (no torch, transformers or lmms_eval.models, which is
mid-import when entry points load). Calling `manifests()` builds the ModelManifest objects and installs
the zero-flag task hook.
"""

from __future__ import annotations

from typing import Any

from medvision_tasks.notices import warn

# --model name -> class path (strings, so nothing is imported until a model is resolved)
ADAPTER_CLASSES: dict[str, str] = {
    "medvision_random": "medvision_adapters.baselines.RandomBaseline",
    "medvision_prior": "medvision_adapters.baselines.PriorBaseline",
    "medvision_replay": "medvision_adapters.baselines.ReplayModel",
    "medvision_v0": "medvision_adapters.chat.MedVisionV0",
    "medvision_lingshu": "medvision_adapters.chat.Lingshu",
    "medvision_medgemma": "medvision_adapters.chat.MedGemma",
    "medvision_qwen2_5_vl": "medvision_adapters.chat.Qwen2_5_VL",
    "medvision_llava_onevision": "medvision_adapters.chat.LlavaOneVision",
    "medvision_internvl3": "medvision_adapters.chat.InternVL3",
    "medvision_gemma3": "medvision_adapters.chat.Gemma3",
    "medvision_llama3_2_vision": "medvision_adapters.chat.Llama3_2_Vision",
    "medvision_healthgpt": "medvision_adapters.special.HealthGPTAdapter",
    "medvision_meddr": "medvision_adapters.special.MedDrAdapter",
    "medvision_huatuogpt_vision": "medvision_adapters.special.HuatuoGPTVisionAdapter",
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
