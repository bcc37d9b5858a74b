"""Data errors met inside an lmms-eval run end it with one line on stderr and exit status 1.

lmms-eval retries `process_docs` (its dataset download is wrapped in tenacity), prints every exception with a
traceback and then exits 0; the message the user finally sees is `RetryError[<Future ... raised PlanError>]`.
Inside the lmms-eval CLI the task hooks therefore turn a `PlanError`, `VolumeError` or `SettingsError` into
`medvision: error: <file>: <problem>; <fix>` on stderr and `SystemExit(1)`, which no `except Exception` (lmms-eval's,
tenacity's, an adapter's per-sample guard) swallows. `--verbosity DEBUG` prints the traceback first. Called
outside the CLI (tests, doctor, export) the hooks raise the original exception unchanged.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from .errors import PlanError, SettingsError, VolumeError

DATA_ERRORS = (PlanError, VolumeError, SettingsError)
PREFIX = "medvision: error: "
F = TypeVar("F", bound=Callable[..., Any])


def in_lmms_eval_cli() -> bool:
    """True when this process is the `lmms-eval` console script or `python -m lmms_eval`."""
    if Path(sys.argv[0] if sys.argv else "").name == "lmms-eval":
        return True
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) in ("lmms_eval.__main__", "lmms_eval")


def one_line(exc: BaseException) -> str:
    """The exception message on one line (newlines and runs of spaces folded)."""
    return " ".join(str(exc).split())


def debug_verbosity() -> bool:
    """lmms-eval exports its --verbosity as VERBOSITY."""
    from .settings import env_value

    return (env_value("VERBOSITY") or "").upper() == "DEBUG"


def end_run(exc: BaseException) -> NoReturn:
    """Print the one-line error (traceback first under DEBUG) and exit the run with status 1."""
    if debug_verbosity():
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    sys.stderr.write(PREFIX + one_line(exc) + "\n")
    sys.stderr.flush()
    raise SystemExit(1)


def data_errors_end_run(fn: F) -> F:
    """Decorator for task hooks: inside the lmms-eval CLI a data error ends the run (see the module doc)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DATA_ERRORS as exc:
            if not in_lmms_eval_cli():
                raise
            end_run(exc)

    return wrapper  # type: ignore[return-value]
