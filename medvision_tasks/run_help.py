"""`medvision-eval run --help`: what `run` adds to lmms-eval, then lmms-eval's own help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .cli_values import flag_value

RUN_ADDS = """\
usage: medvision-eval run <lmms-eval arguments>

`medvision-eval run` runs the lmms-eval CLI with the arguments you give and adds:
  --include_path <tasks-dir>  the plugin's task YAMLs, when you do not pass --include_path
  --log_samples               per-sample records (the leaderboard reads them), when absent
  medvision_run.json          written into --output_path: plugin and lmms-eval versions, the arguments,
                              the global settings, skipped subtasks and the exit status
  exit status 1               when lmms-eval wrote no *_results.json (lmms-eval itself exits 0 after an error)

Everything else is lmms-eval's; its help (`lmms-eval eval --help`) follows.
"""


def lmms_eval_command() -> list[str]:
    """The lmms-eval CLI next to this interpreter, else ``python -m lmms_eval``."""
    lmms_eval = Path(sys.executable).with_name("lmms-eval")
    return [str(lmms_eval)] if lmms_eval.exists() else [sys.executable, "-m", "lmms_eval"]


def wants_help(argv: list[str]) -> bool:
    """True when the `run` arguments ask for help."""
    return any(a in ("-h", "--help") for a in argv)


def print_run_help() -> int:
    """Print what `run` adds, then lmms-eval's help; returns lmms-eval's exit status."""
    sys.stdout.write(RUN_ADDS + "\n")
    sys.stdout.flush()
    return subprocess.call([*lmms_eval_command(), "eval", "--help"])


def model_args_error(argv: list[str]) -> str | None:
    """The one-line error for a MedVision model's --model_args (an unknown key, a host flag such as
    ``batch_size``, an unknown backend), found before lmms-eval starts; None when the keys are valid."""
    import importlib

    from medvision_adapters.errors import AdapterConfigError
    from medvision_adapters.manifests import ADAPTER_CLASSES

    path = ADAPTER_CLASSES.get(flag_value(argv, "--model") or "")
    if path is None:
        return None  # not a MedVision model (lmms-eval reports unknown names itself)
    text = flag_value(argv, "--model_args") or ""
    given = dict(part.split("=", 1) if "=" in part else (part, "") for part in text.split(",") if part.strip())
    given = {key.strip(): value for key, value in given.items()}
    module, _, name = path.rpartition(".")
    try:
        getattr(importlib.import_module(module), name).check_model_arg_keys(given)
    except AdapterConfigError as exc:
        return str(exc)
    return None
