"""Zero-flag task discovery, pre-flight checks and model capture (docs/reference.md §0.4, §3.7), installed by the model
entry point.

* `TaskManager.initialize_tasks` is wrapped so that the plugin's yaml/ folder joins `include_path`
  (de-duplicated by real path).
* `TaskManager.match_tasks` checks the requested MedVision tasks against the data root before lmms-eval
  builds the model. With `MEDVISION_SKIP_MISSING=1` the subtasks whose dataset is absent are dropped instead
  (`_get_config` filters group members, `load_task_or_group` top-level names) and recorded: a
  `medvision_skipped` key in the results JSON and `<output_path>/medvision_skipped.json`.
* `lmms.__init__` and `lmms.create_from_arg_string`/`create_from_arg_obj` note the model instance being built,
  so `stock_geometry` can derive the geometry of stock lmms-eval models from it.

Each wrap is applied when its module is imported (or at once if it already is). `MEDVISION_NO_TASK_HOOK=1`
disables all of them; if lmms-eval's internals changed, each warns and does nothing.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import inspect
import os
import sys
from pathlib import Path
from typing import Any

from .notices import warn

TARGET = "lmms_eval.tasks"
MODEL_TARGET = "lmms_eval.api.model"
_MARK = "_medvision_wrapped"
_SKIPPED_ATTR = "_medvision_skipped"


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
        warn(
            "medvision: lmms_eval.tasks.TaskManager.initialize_tasks not found; zero-flag task "
            'discovery is off, pass --include_path "$(medvision-eval tasks-dir)".',
            stacklevel=2,
        )
        return False
    if getattr(init_tasks, _MARK, False):
        return True
    params = inspect.signature(init_tasks).parameters
    if "include_path" not in params:
        warn(
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
            from .runerrors import data_errors_end_run

            skipped = data_errors_end_run(preflight)([n for n in names if isinstance(n, str)])
            setattr(self, _SKIPPED_ATTR, set(skipped))
            _patch_results_recorder()  # records skipped subtasks; cleans our part of the results (strict_results)
            return names

        setattr(match_tasks, _MARK, True)
        manager.match_tasks = match_tasks
    _patch_skip_filters(manager)
    return True


def _skipped_for(manager_self: Any, names: list[str]) -> set[str]:
    """Subtasks to drop for this TaskManager; computed here when match_tasks did not run (Python API)."""
    skipped = getattr(manager_self, _SKIPPED_ATTR, None)
    if skipped is None:
        from .settings import skip_missing

        if not skip_missing():
            return set()
        from .preflight import preflight
        from .runerrors import data_errors_end_run

        skipped = set(data_errors_end_run(preflight)(names))
        setattr(manager_self, _SKIPPED_ATTR, skipped)
    return skipped


def _fully_skipped(name: str, skipped: set[str]) -> bool:
    """True when `name` is a skipped subtask or a MedVision group all of whose subtasks are skipped."""
    if not skipped or not isinstance(name, str) or not name.startswith("medvision"):
        return False
    if name in skipped:
        return True
    from .preflight import expand

    members = expand([name])
    return bool(members) and all(s.name in skipped for s in members)


def _patch_skip_filters(manager: Any) -> None:
    """Drop skipped subtasks from MedVision group configs and from the top-level names being loaded."""
    get_config = getattr(manager, "_get_config", None)
    load = getattr(manager, "load_task_or_group", None)
    if get_config is None or load is None:
        warn(
            "medvision: TaskManager._get_config/load_task_or_group not found; MEDVISION_SKIP_MISSING cannot drop "
            "subtasks from groups.",
            stacklevel=3,
        )
        return
    if not getattr(get_config, _MARK, False):

        @functools.wraps(get_config)
        def _get_config_filtered(self: Any, name: Any, *args: Any, **kwargs: Any) -> Any:
            config = get_config(self, name, *args, **kwargs)
            skipped = getattr(self, _SKIPPED_ATTR, None)
            if skipped and isinstance(config, dict) and isinstance(config.get("task"), list):
                if isinstance(config.get("group"), str) and config["group"].startswith("medvision"):
                    config = dict(config, task=[t for t in config["task"] if not _fully_skipped(t, skipped)])
            return config

        setattr(_get_config_filtered, _MARK, True)
        manager._get_config = _get_config_filtered
    if not getattr(load, _MARK, False):

        @functools.wraps(load)
        def load_task_or_group(self: Any, task_list: Any = None, *args: Any, **kwargs: Any) -> Any:
            names = [task_list] if isinstance(task_list, str) else list(task_list or [])
            skipped = _skipped_for(self, [n for n in names if isinstance(n, str)])
            if skipped:
                names = [n for n in names if not _fully_skipped(n, skipped)]
                task_list = names
            return load(self, task_list, *args, **kwargs)

        setattr(load_task_or_group, _MARK, True)
        manager.load_task_or_group = load_task_or_group


def _patch_results_recorder() -> None:
    """Wrap `lmms_eval.evaluator.simple_evaluate` (called by the CLI after match_tasks) to record skipped tasks
    and to clean the MedVision part of the results (`strict_results.clean_results`)."""
    evaluator = sys.modules.get("lmms_eval.evaluator")
    simple_evaluate = getattr(evaluator, "simple_evaluate", None)
    if simple_evaluate is None:
        warn(
            "medvision: lmms_eval.evaluator.simple_evaluate not found; skipped subtasks are only in the log.",
            stacklevel=3,
        )
        return
    if getattr(simple_evaluate, _MARK, False):
        return

    @functools.wraps(simple_evaluate)
    def recording_simple_evaluate(*args: Any, **kwargs: Any) -> Any:
        results = simple_evaluate(*args, **kwargs)
        from .preflight import record_skipped, skipped_subtasks
        from .strict_results import clean_results

        if isinstance(results, dict):
            clean_results(results)

        if isinstance(results, dict) and skipped_subtasks():
            output_path = getattr(kwargs.get("evaluation_tracker"), "output_path", None)
            results["medvision_skipped"] = record_skipped(output_path)
        return results

    setattr(recording_simple_evaluate, _MARK, True)
    evaluator.simple_evaluate = recording_simple_evaluate


def patch_model_base(module: Any) -> bool:
    """Wrap `lmms.__init__` and `lmms.create_from_arg_*` in `module` to note the model instance being built."""
    base = getattr(module, "lmms", None)
    init = getattr(base, "__init__", None)
    if base is None or init is None:
        warn(
            "medvision: lmms_eval.api.model.lmms not found; the geometry of stock models is not derived, set "
            "MEDVISION_GEOMETRY.",
            stacklevel=2,
        )
        return False
    if getattr(init, _MARK, False):
        return True

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        _note_instance(self, None)

    setattr(__init__, _MARK, True)
    base.__init__ = __init__

    for name, parse in (("create_from_arg_string", _parse_arg_string), ("create_from_arg_obj", _copy_arg_obj)):
        original = base.__dict__.get(name)
        func = getattr(original, "__func__", None)
        if original is None and name != "create_from_arg_string":
            continue  # lmms-eval 0.7.3 has no create_from_arg_obj
        if not isinstance(original, classmethod) or func is None:
            warn(f"medvision: lmms.{name} is not a classmethod; model args are not recorded.", stacklevel=2)
            continue
        base_func: Any = func

        def create(cls: Any, arg: Any, *args: Any, _func: Any = base_func, _parse: Any = parse, **kwargs: Any) -> Any:
            instance = _func(cls, arg, *args, **kwargs)
            _note_instance(instance, _parse(arg))
            return instance

        functools.update_wrapper(create, base_func)
        setattr(create, _MARK, True)
        setattr(base, name, classmethod(create))
    return True


def _note_instance(instance: Any, model_args: dict[str, Any] | None) -> None:
    """Note the model for `stock_geometry`; never lets a failure here break model construction."""
    try:
        from .stock_geometry import note_model_instance

        note_model_instance(instance, model_args)
    except Exception as exc:  # pragma: no cover - defensive
        warn(f"medvision: could not note the model instance ({exc}).", stacklevel=2)


def _parse_arg_string(arg: Any) -> dict[str, Any] | None:
    try:
        from lmms_eval.utils import simple_parse_args_string

        return dict(simple_parse_args_string(arg)) if isinstance(arg, str) else None
    except Exception:
        return None


def _copy_arg_obj(arg: Any) -> dict[str, Any] | None:
    return dict(arg) if isinstance(arg, dict) else None


_PATCHERS = {TARGET: patch_task_manager, MODEL_TARGET: patch_model_base}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finder that lets the normal loader run, then patches the loaded module; leaves once all are patched."""

    def __init__(self) -> None:
        self.pending = set(_PATCHERS)

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.pending:
            return None
        self.pending.discard(fullname)
        if not self.pending and self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original_exec = loader.exec_module
        patcher = _PATCHERS[fullname]

        def exec_module(module: Any) -> None:
            original_exec(module)
            patcher(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> bool:
    """Install the hooks unless MEDVISION_NO_TASK_HOOK=1; safe to call more than once."""
    from .settings import parse_bool, read_env

    if parse_bool("MEDVISION_NO_TASK_HOOK", read_env("no_task_hook") or ""):
        return False
    ok = True
    waiting = []
    for name, patcher in _PATCHERS.items():
        module = sys.modules.get(name)
        if module is not None:
            ok = patcher(module) and ok
        else:
            waiting.append(name)
    finder = next((f for f in sys.meta_path if isinstance(f, _PatchAfterImport)), None)
    if waiting and finder is None:
        finder = _PatchAfterImport()
        sys.meta_path.insert(0, finder)
    if finder is not None:
        finder.pending = set(waiting)
        if not waiting:
            sys.meta_path.remove(finder)
    return ok
