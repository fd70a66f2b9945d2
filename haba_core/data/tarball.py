"""Extract an image-folder tarball once into the cache, refusing members that escape the target."""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath
from typing import Callable

from ..errors import FormatError
from .build_once import build_dir_once
from .fingerprint import file_key

TARBALL_SUFFIXES = (".tar.gz", ".tgz")


def is_tarball(path: Path) -> bool:
    """True for a ``.tar.gz``/``.tgz`` file name."""
    return path.name.lower().endswith(TARBALL_SUFFIXES)


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    parts = PurePosixPath(member.name.replace("\\", "/")).parts
    if member.name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise FormatError(f"{archive}: refusing member {member.name!r} that would land outside the extraction directory")
    if not (member.isfile() or member.isdir()) and not hasattr(tarfile, "data_filter"):
        raise FormatError(f"{archive}: refusing link or special member {member.name!r}")


def _extract_all(archive: Path, dest: Path) -> None:
    kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                _check_member(member, archive)
                tar.extract(member, dest, **kwargs)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FormatError(f"{archive}: cannot extract ({exc})") from exc


def extract_once(archive: Path, cache_dir: Path, validate: Callable[[Path], None] | None = None) -> Path:
    """Directory ``<cache_dir>/imagefolder/<key>/`` holding the archive's contents, extracted on first use.

    ``key`` hashes the archive's absolute path, size and mtime. Extraction goes to a temporary
    directory that is renamed into place only after ``validate(tmp)`` accepted it.
    """
    final = cache_dir / "imagefolder" / file_key(archive)
    if final.is_dir():
        return final
    with build_dir_once(final) as tmp:
        _extract_all(archive, tmp)
        if validate is not None:
            validate(tmp)
    return final
