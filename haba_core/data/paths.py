"""Default locations of the data root and of the cache directory."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_root() -> Path:
    """``$HABA_DATA_ROOT`` if set, else ``./data`` (relative to the current directory)."""
    env = os.environ.get("HABA_DATA_ROOT")
    return Path(env).expanduser() if env else Path.cwd() / "data"


def default_cache_dir() -> Path:
    """``$HABA_CACHE`` if set, else ``~/.cache/haba``."""
    env = os.environ.get("HABA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "haba"
