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


class DeprecatedAlias(argparse.Action):
    """Store the option's value; given under one of its ``deprecated`` spellings, also print
    ``<prog>: warning: <old> is deprecated; use <new>`` on stderr."""

    def __init__(self, option_strings, dest, deprecated: tuple[str, ...] = (), **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.deprecated = tuple(deprecated)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.deprecated:
            print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.option_strings[0]}",
                  file=sys.stderr, flush=True)
        setattr(namespace, self.dest, values)
