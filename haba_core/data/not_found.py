"""Build the one :class:`DatasetNotFoundError` message format used by every loader."""

from __future__ import annotations

import os
from typing import Iterable

from ..errors import DatasetNotFoundError


def dataset_not_found(dataset: str, searched: Iterable[str | os.PathLike], expected: Iterable[str], how: str) -> DatasetNotFoundError:
    """An error naming the dataset, the directories searched, the files expected there and how to get them."""
    dirs = ", ".join(str(d) for d in searched)
    files = ", ".join(expected)
    return DatasetNotFoundError(f"dataset {dataset!r} not found: searched {dirs}; expected {files}. To obtain it: {how}")
