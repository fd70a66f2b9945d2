"""The output directory of a run: created up front for its checkpoints, completed in one atomic swap.

While a run works, ``OUT`` holds only checkpoints (``OUT/checkpoint``, ``OUT/baseline-plain/checkpoint``),
each replaced atomically by the core. The results are written into a temporary sibling directory,
the checkpoints are moved into it, and it replaces ``OUT`` in one rename — so ``OUT`` never holds a
half-written result. On an error, a directory this run created is removed again; a directory the
user pointed at is left as it was found (an empty one is emptied again, a resumed one keeps its
checkpoint). ``--overwrite`` keeps the old result in place until the new one is complete: the new
run's checkpoints live in the sibling ``.OUT.overwrite`` and the finished result replaces ``OUT`` in
the same single swap. On start (and on ``--resume``) leftovers of an interrupted swap are repaired
first (:func:`haba_core.atomic.recover_dir`); :attr:`RunDirectory.notes` says what was done.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable

from haba_core.atomic import atomic_dir, recover_dir

from .cli_errors import UsageError

CHECKPOINT = "checkpoint"


def default_out_dir(prefix: str, dataset: str, root: str | Path = "runs") -> Path:
    """``runs/<prefix>-<dataset>-<YYYYmmdd-HHMMSS>`` (a numeric suffix if that already exists)."""
    slug = dataset.split(":", 1)[-1].rstrip("/\\")
    slug = Path(slug).name if ":" in dataset else slug
    for suffix in (".tar.gz", ".tgz"):
        if slug.endswith(suffix):
            slug = slug[: -len(suffix)]
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in slug) or "data"
    base = Path(root) / f"{prefix}-{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def has_checkpoint(directory: Path) -> bool:
    return (directory / "state.json").is_file()


class RunDirectory:
    """Owns ``OUT`` for one command invocation (see the module docstring)."""

    def __init__(self, path: str | Path, resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        self.resume, self.overwrite = resume, overwrite
        self.created = False            # this run made OUT (remove it on error)
        self._preexisting: set[str] = set()
        self.work = self.path           # where checkpoints live while the run works
        self.notes: list[str] = []      # what recover() repaired

    @property
    def checkpoint(self) -> Path:
        return self.work / CHECKPOINT

    @property
    def staging(self) -> Path:
        return self.path.with_name(f".{self.path.name}.overwrite")

    def recover(self) -> list[str]:
        """Repair leftovers of an interrupted save of OUT and of its checkpoints; returns what was done."""
        notes = recover_dir(self.path)
        if self.path.is_dir():
            subdirs = [d for d in self.path.iterdir() if d.is_dir() and not d.name.startswith(".")]
            for ckpt in [self.path / CHECKPOINT] + [d / CHECKPOINT for d in subdirs if d.name != CHECKPOINT]:
                notes += recover_dir(ckpt)
        if self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
            notes.append(f"removed {self.staging.name}, the checkpoints of an unfinished --overwrite run")
        self.notes += notes
        return notes

    def check(self) -> "RunDirectory":
        """Repair leftovers of an interrupted save (:meth:`recover`), then refuse unusable or occupied
        directories."""
        self.recover()
        p = self.path
        if p.exists() and not p.is_dir():
            raise UsageError(f"--out {p} exists and is not a directory")
        if self.resume:
            if not has_checkpoint(self.checkpoint):
                raise UsageError(f"nothing to resume: {self.checkpoint} holds no checkpoint "
                                 f"(run without --resume to start, or point --out at the interrupted run)")
        elif p.exists() and any(p.iterdir()) and not self.overwrite:
            raise UsageError(f"output directory {p} already exists and is not empty; use --resume to continue "
                             f"its run, --overwrite to replace it, or choose another --out")
        return self

    def prepare(self) -> "RunDirectory":
        """Make OUT ready for checkpoints (after :meth:`check`; ``--overwrite`` deletes the old one here)."""
        self.check()
        p = self.path
        if self.resume:
            self._preexisting = {e.name for e in p.iterdir()}
            return self
        if p.exists():
            if any(p.iterdir()):  # --overwrite: the old result stays until the new one replaces it
                self.work = self.staging
                self.work.mkdir()
                return self
            return self  # an empty directory the user made: keep it, remove only what we add
        p.mkdir(parents=True)
        self.created = True
        return self

    def cleanup(self) -> None:
        """Undo this run's traces after an error (never touches a resumed run's files)."""
        if self.resume:
            return
        if self.work != self.path:
            shutil.rmtree(self.work, ignore_errors=True)
            return
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
        elif self.path.is_dir():
            for entry in self.path.iterdir():
                if entry.name not in self._preexisting:
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)

    def is_empty(self) -> bool:
        return not self.path.is_dir() or not any(self.path.iterdir())

    def finish(self, write: Callable[[Path], None]) -> Path:
        """``write(tmp)`` the results into a temporary sibling, carry over everything already in OUT
        that the results do not replace (the checkpoints), and swap it in for OUT atomically."""
        with atomic_dir(self.path) as tmp:
            write(tmp)
            if self.work.is_dir():
                _carry_over(self.work, tmp)
            _usual_permissions(tmp)
        if self.work != self.path:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = self.path
        self.created = True
        return self.path


def _usual_permissions(root: Path) -> None:
    """Temporary files and directories are created owner-only (mkstemp/mkdtemp); give the finished
    result the permissions an ordinary ``mkdir``/``open`` would (0777/0666 minus the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~umask)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o666 & ~umask)


def _carry_over(src: Path, dst: Path) -> None:
    for entry in src.iterdir():
        target = dst / entry.name
        if not target.exists():
            os.replace(entry, target)
        elif entry.is_dir() and target.is_dir():
            _carry_over(entry, target)
