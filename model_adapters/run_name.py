"""A readable output-folder name for replay runs.

lmms-eval names the folder under ``--output_path`` after the first of ``pretrained=``, ..., ``path=`` in
``--model_args`` (``GeneralConfigTracker._get_model_name``), so a replay of ``path=out/responses.jsonl`` would
write into ``.../responses.jsonl/``. `name_replay_run` makes that name ``medvision_replay__responses`` (or
``<as_adapter>__replay__responses``) instead; other models keep lmms-eval's name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from medvision_tasks.notices import warn

_MARK = "_medvision_replay_names"
_NAMES: dict[str, str] = {}


def replay_run_name(path: str, as_adapter: str | None = None) -> str:
    """``medvision_replay__<stem>`` or ``<as_adapter>__replay__<stem>`` for a replay ``path`` (file or folder)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem or Path(path).name) or "responses"
    return f"{as_adapter}__replay__{stem}" if as_adapter else f"medvision_replay__{stem}"


def name_replay_run(path: str, name: str) -> bool:
    """Make lmms-eval use ``name`` when it would name the output folder after the replay ``path``."""
    try:
        from lmms_eval.loggers.evaluation_tracker import GeneralConfigTracker
    except Exception:  # pragma: no cover - lmms-eval layout changed
        return False
    _NAMES[path] = name
    current = GeneralConfigTracker.__dict__.get("_get_model_name")
    func = getattr(current, "__func__", None)
    if not isinstance(current, staticmethod) or func is None:
        warn("medvision: lmms-eval's output folder naming changed; replay runs keep lmms-eval's folder name.")
        return False
    if getattr(func, _MARK, False):
        return True

    def _get_model_name(model_args: str, _original: Any = func) -> str:
        derived = _original(model_args)
        return _NAMES.get(derived, derived)

    setattr(_get_model_name, _MARK, True)
    GeneralConfigTracker._get_model_name = staticmethod(_get_model_name)
    return True
