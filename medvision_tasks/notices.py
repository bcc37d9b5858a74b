"""User-facing warnings that survive lmms-eval's CLI, which silences the `warnings` module at import."""

from __future__ import annotations

import logging
import warnings

LOGGER = logging.getLogger("medvision")


def warn(message: str, stacklevel: int = 2) -> None:
    """Emit `message` as a UserWarning (Python API, tests) and on the `medvision` logger (CLI runs)."""
    warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)
    LOGGER.warning(message)
