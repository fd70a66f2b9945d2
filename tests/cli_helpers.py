"""Shared helpers of the command-line tests: tiny digits settings and an in-process runner."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import torch

# Tiny settings: a handful of iterations, a narrow ConvNet and a 2-epoch, 1-run evaluation.
# --threads 1: on a shared 2-core machine one intra-op thread is many times faster for these tiny models
# (the runs restore the thread count afterwards, see run_main).
TINY = ["--threads", "1", "--iterations", "3", "--eval-epochs", "2", "--eval-runs", "1", "--net-width", "8",
        "--set", "dm.batch_real=32"]
QUIET = [*TINY, "--quiet"]


@dataclass
class Ran:
    code: int
    out: str
    err: str


def run_main(main, argv: list[str]) -> Ran:
    """Run a CLI ``main(argv)`` in-process, capturing stdout/stderr and the exit status."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    threads = torch.get_num_threads()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv) or 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            torch.set_num_threads(threads)
    return Ran(code, out.getvalue(), err.getvalue())


def assert_clean_error(ran: Ran, *fragments: str) -> None:
    """Exit 2, one ``error:`` line on stderr (its last line) naming the problem, no traceback, nothing on stdout."""
    assert ran.code == 2, (ran.code, ran.err)
    assert "Traceback" not in ran.err, ran.err
    assert ran.out == "", ran.out
    lines = [ln for ln in ran.err.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ": error: " in ln]
    assert len(errors) == 1 and errors[0] == lines[-1], ran.err
    for frag in fragments:
        assert frag.lower() in errors[0].lower(), (frag, errors[0])
