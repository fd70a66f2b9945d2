"""Reading the JSON documents the toolkit writes (the counterpart of :func:`haba_core.atomic.write_json`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import FormatError


def read_json_document(path: str | os.PathLike, fmt: str, what: str) -> dict[str, Any]:
    """The JSON object at ``path`` whose ``"format"`` is ``fmt``; :class:`FormatError` otherwise.

    ``what`` names the directory's kind in the "missing" message (e.g. ``"a factorized collection"``).
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path.parent} is not {what}: {path.name} is missing")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise FormatError(f"{path} does not describe a {fmt}")
    return doc
