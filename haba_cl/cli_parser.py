"""The argument parser every command uses: usage mistakes are one line on stderr, a hint, exit 2."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from .cli_errors import EXIT_ERROR, one_line


class OneLineParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors print ``<prog>: error: <message> (see <prog> --help)``
    instead of the usage block, and exit 2 like every other error of the CLI."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        print(f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_ERROR)
