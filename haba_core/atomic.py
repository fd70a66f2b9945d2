"""Write files and directories atomically: a temporary name first, then ``os.replace``."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors.torch import save_file


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The result gets ordinary permissions (0666 minus the umask), not mkstemp's owner-only 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | os.PathLike, obj: Any, default: Any = None) -> None:
    """Atomically write ``obj`` as indented JSON (``default`` as in :func:`json.dumps`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=default) + "\n")


def write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically write a dict of tensors as safetensors (contiguous CPU copies)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


COMPLETE = ".complete"
"""Marker written into a finished temporary directory just before it is swapped in (see :func:`recover_dir`)."""

_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns ``False`` (nothing changed) where the platform or file system does not support it.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; it replaces ``path`` only if the block succeeds.

    The swap is one atomic exchange where the OS supports it; elsewhere two renames (``path`` →
    ``.path.old``, temporary → ``path``), whose crash window :func:`recover_dir` repairs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        (tmp / COMPLETE).touch()
        if path.exists():
            if not exchange(tmp, path):  # tmp now holds the old content (removed below)
                old = path.with_name(f".{path.name}.old")
                if old.exists():
                    shutil.rmtree(old)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old)
        else:
            os.replace(tmp, path)
        (path / COMPLETE).unlink(missing_ok=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def recover_dir(path: str | os.PathLike) -> list[str]:
    """Repair what a crash during :func:`atomic_dir`'s swap left beside ``path``; returns what was done.

    If ``path`` is missing or empty: a finished temporary directory (it holds the :data:`COMPLETE`
    marker) becomes ``path``; else a ``.path.old`` is restored. Every other leftover
    (``.path.*.tmp``, ``.path.old``) is removed.
    """
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        return []
    tmps = [e for e in parent.iterdir() if e.name.startswith(f".{path.name}.") and e.name.endswith(".tmp") and e.is_dir()]
    old = parent / f".{path.name}.old"
    done: list[str] = []
    missing = not path.exists() or (path.is_dir() and not any(path.iterdir()))
    if missing:
        finished = sorted((t for t in tmps if (t / COMPLETE).exists()), key=lambda t: t.stat().st_mtime)
        source = finished[-1] if finished else (old if old.is_dir() else None)
        if source is not None:
            if path.is_dir():
                path.rmdir()
            os.replace(source, path)
            (path / COMPLETE).unlink(missing_ok=True)
            done.append(f"recovered {path} from {source.name} (a save was interrupted)")
            tmps = [t for t in tmps if t != source]
    for leftover in tmps + ([old] if old.exists() else []):
        shutil.rmtree(leftover, ignore_errors=True)
        done.append(f"removed {leftover.name}, left over from an interrupted save")
    return done
