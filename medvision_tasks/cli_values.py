"""Command-line helpers: `OneLineParser` prints an argparse error as a single ``prog: error: ...`` line (no
usage block, no traceback) and exits 2 (value checks come from `medvision_metrics.options`); `flag_value` and
`has_flag` read an lmms-eval command line as the run wrapper and the journal see it."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from medvision_metrics.options import choice, invalid_value_message, metavar

__all__ = ["OneLineParser", "choice", "flag_value", "has_flag", "invalid_value_message", "metavar"]


def flag_value(argv: list[str], name: str) -> str | None:
    """The value of `name VALUE` or `name=VALUE` in a command line (the first one), or None."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def has_flag(argv: list[str], *names: str) -> bool:
    """Whether any of `names` is given, as `name` or `name=VALUE`."""
    return any(a == n or a.startswith(n + "=") for a in argv for n in names)


class OneLineParser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr (``prog: error: message``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument ") and " is not valid; valid: " in message:
            message = message.split(": ", 1)[1]  # our own message names the option and the choices
        else:
            message = f"{message}; see {self.prog} --help"
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)
