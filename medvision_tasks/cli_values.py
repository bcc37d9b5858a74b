"""One-line CLI errors: `OneLineParser` prints an argparse error as a single ``prog: error: ...`` line (no usage
block, no traceback) and exits 2; value checks come from `medvision_metrics.options`."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from medvision_metrics.options import choice, invalid_value_message, metavar

__all__ = ["OneLineParser", "choice", "invalid_value_message", "metavar"]


class OneLineParser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr (``prog: error: message``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument ") and " is not valid; valid: " in message:
            message = message.split(": ", 1)[1]  # our own message names the option and the choices
        else:
            message = f"{message}; see {self.prog} --help"
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)
