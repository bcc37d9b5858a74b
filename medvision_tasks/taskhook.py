"""Zero-flag task discovery and pre-flight checks (SPEC §0.4), installed by the model entry point.

`TaskManager.initialize_tasks` is wrapped so that the plugin's yaml/ folder joins `include_path`
(de-duplicated by real path), and `TaskManager.match_tasks` so that requested MedVision tasks are checked
against the data root before lmms-eval builds the model. The wrap is applied when `lmms_eval.tasks` is
imported (or at once if it already is). `MEDVISION_NO_TASK_HOOK=1` disables it; if lmms-eval's internals
changed, it warns and does nothing.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import inspect
import os
import sys
import warnings
from pathlib import Path
from typing import Any

TARGET = "lmms_eval.tasks"
_MARK = "_medvision_wrapped"


def tasks_dir() -> str:
    """Absolute path of the plugin's task YAML folder."""
    return str(Path(__file__).resolve().parent / "yaml")


def _merge_include(include_path: Any) -> list[str]:
    paths: list[str] = []
    if isinstance(include_path, (str, os.PathLike)):
        paths = [str(include_path)]
    elif include_path:
        paths = [str(p) for p in include_path]
    ours = os.path.realpath(tasks_dir())
    if all(os.path.realpath(p) != ours for p in paths):
        paths.append(tasks_dir())
    return paths


def patch_task_manager(module: Any) -> bool:
    """Wrap TaskManager in `module`; returns False (with a warning) when its API is not as expected."""
    manager = getattr(module, "TaskManager", None)
    init_tasks = getattr(manager, "initialize_tasks", None)
    if manager is None or init_tasks is None:
        warnings.warn(
            "medvision: lmms_eval.tasks.TaskManager.initialize_tasks not found; zero-flag task "
            'discovery is off, pass --include_path "$(medvision-eval tasks-dir)".',
            stacklevel=2,
        )
        return False
    if getattr(init_tasks, _MARK, False):
        return True
    params = inspect.signature(init_tasks).parameters
    if "include_path" not in params:
        warnings.warn(
            "medvision: TaskManager.initialize_tasks has no include_path parameter; zero-flag task "
            'discovery is off, pass --include_path "$(medvision-eval tasks-dir)".',
            stacklevel=2,
        )
        return False

    @functools.wraps(init_tasks)
    def initialize_tasks(self: Any, include_path: Any = None, *args: Any, **kwargs: Any) -> Any:
        from .settings import note_host_model

        if isinstance(getattr(self, "model_name", None), str):
            note_host_model(self.model_name)
        return init_tasks(self, _merge_include(include_path), *args, **kwargs)

    setattr(initialize_tasks, _MARK, True)
    manager.initialize_tasks = initialize_tasks

    match = getattr(manager, "match_tasks", None)
    if match is not None and not getattr(match, _MARK, False):

        @functools.wraps(match)
        def match_tasks(self: Any, task_list: Any, *args: Any, **kwargs: Any) -> Any:
            names = match(self, task_list, *args, **kwargs)
            from .preflight import preflight

            preflight([n for n in names if isinstance(n, str)])
            return names

        setattr(match_tasks, _MARK, True)
        manager.match_tasks = match_tasks
    return True


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finder that lets the normal loader run, then patches the loaded module."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != TARGET:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        finally:
            pass
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module: Any) -> None:
            original_exec(module)
            patch_task_manager(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> bool:
    """Install the hook unless MEDVISION_NO_TASK_HOOK=1; safe to call more than once."""
    if os.environ.get("MEDVISION_NO_TASK_HOOK", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    module = sys.modules.get(TARGET)
    if module is not None:
        return patch_task_manager(module)
    if not any(isinstance(f, _PatchAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchAfterImport())
    return True
