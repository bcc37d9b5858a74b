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


def host_flag_error(argv: list[str]) -> str | None:
    """The one-line error when a MedVision model gets ``batch_size``/``max_batch_size`` in --model_args."""
    model = flag_value(argv, "--model") or ""
    if not model.startswith("medvision_"):
        return None
    keys = {part.split("=", 1)[0].strip() for part in (flag_value(argv, "--model_args") or "").split(",")}
    for key in ("batch_size", "max_batch_size"):
        if key in keys:
            return f"--model {model}: {key} is not a --model_args key; use lmms-eval's --{key} flag (e.g. --{key} 4)."
    return None
