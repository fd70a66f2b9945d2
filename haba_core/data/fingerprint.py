"""Cache keys that change when a source file or directory listing changes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable


def file_key(path: str | os.PathLike) -> str:
    """Short hash of a file's absolute path, size and modification time."""
    p = Path(path).absolute()
    st = p.stat()
    return hashlib.sha256(f"{p}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:20]


def listing_key(root: str | os.PathLike, files: Iterable[str | os.PathLike]) -> str:
    """Short hash of a directory's absolute path and the relative name, size and mtime of each listed file."""
    r = Path(root).absolute()
    h = hashlib.sha256(str(r).encode())
    for f in files:
        st = os.stat(f)
        h.update(f"\0{os.path.relpath(f, r)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]
