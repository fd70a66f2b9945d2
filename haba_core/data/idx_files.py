"""Locate MNIST-style IDX files (plain or gzip) and decompress them into the cache, never the data root."""

from __future__ import annotations

import gzip
import shutil
import zlib
from pathlib import Path

from ..atomic import atomic_path
from ..errors import FormatError
from .fingerprint import file_key

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def all_idx_names() -> list[str]:
    """The four uncompressed IDX file names of an MNIST-style dataset."""
    return [n for pair in IDX_FILES.values() for n in pair]


def find_idx_pair(dirs: list[Path], split: str) -> tuple[Path, Path] | None:
    """First directory holding both the image and label file of ``split`` (each plain or ``.gz``)."""
    for d in dirs:
        found = []
        for base in IDX_FILES[split]:
            cand = next((p for p in (d / base, d / f"{base}.gz") if p.is_file()), None)
            if cand is None:
                break
            found.append(cand)
        if len(found) == 2:
            return found[0], found[1]
    return None


def uncompressed(path: Path, cache_dir: Path) -> Path:
    """``path`` itself if not gzipped, else its decompressed copy in ``<cache_dir>/idx/`` (made once)."""
    if path.suffix != ".gz":
        return path
    target = cache_dir / "idx" / f"{file_key(path)}-{path.stem}"
    if not target.is_file():
        try:
            with atomic_path(target) as tmp, gzip.open(path, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError, zlib.error) as exc:
            raise FormatError(f"{path}: cannot decompress ({exc})") from exc
    return target
