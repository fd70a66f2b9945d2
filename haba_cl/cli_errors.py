"""The one place where expected failures become "one line on stderr + exit status 2".

Every command wraps its body in :func:`handle_errors`. Errors a user can cause — toolkit errors
(:class:`haba_core.HabaError`), file-system errors (:class:`OSError`), malformed TOML and the CLI's own
:class:`UsageError` — print ``<prog>: error: <message>`` and exit 2 without a traceback. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator, NoReturn

from haba_core import HabaError

try:  # Python >= 3.11
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as _toml  # type: ignore[no-redef]

TOMLDecodeError = _toml.TOMLDecodeError
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command-line problem found by the CLI itself (bad combination of options, existing --out, ...)."""


def one_line(text: str) -> str:
    """Collapse a message onto one line."""
    return " ".join(str(text).split())


def describe(exc: BaseException) -> str:
    """The user-facing message of an expected error."""
    if isinstance(exc, TOMLDecodeError):
        return f"invalid TOML: {exc}"
    if isinstance(exc, OSError) and not isinstance(exc, HabaError):
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        return f"{exc.strerror or exc.__class__.__name__}{where}" if exc.strerror else str(exc)
    return str(exc)


def fail(prog: str, message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``prog: error: message`` on stderr and exit with ``code``."""
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr, flush=True)
    raise SystemExit(code)


EXPECTED = (HabaError, OSError, TOMLDecodeError, UsageError)


@contextmanager
def handle_errors(prog: str, cleanup: Callable[[], None] | None = None) -> Iterator[None]:
    """Turn expected errors into one stderr line and exit 2; ``cleanup`` runs first (remove partial output)."""
    try:
        yield
    except EXPECTED as exc:
        if cleanup is not None:
            cleanup()
        fail(prog, describe(exc))
