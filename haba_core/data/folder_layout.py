"""The torchvision ImageFolder layout: ``<root>/<split>/<class>/**/<image>``, classes sorted by name."""

from __future__ import annotations

import os
from pathlib import Path

# Same extensions as torchvision.datasets.folder.IMG_EXTENSIONS (kept here so a cached load skips importing torchvision).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IGNORED_TOP_LEVEL = ("__MACOSX",)


def _visible(name: str) -> bool:
    return not name.startswith(".") and name not in IGNORED_TOP_LEVEL


def find_split_root(base: Path) -> Path | None:
    """``base`` if it holds ``train/`` or ``test/``, else its single visible sub-folder that does, else None."""
    if (base / "train").is_dir() or (base / "test").is_dir():
        return base
    subdirs = [p for p in base.iterdir() if p.is_dir() and _visible(p.name)] if base.is_dir() else []
    if len(subdirs) == 1 and ((subdirs[0] / "train").is_dir() or (subdirs[0] / "test").is_dir()):
        return subdirs[0]
    return None


def find_classes(split_dir: Path) -> list[str]:
    """Sorted names of the (non-hidden) class folders of a split, like ``ImageFolder.find_classes``."""
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and _visible(e.name))


def list_images(split_dir: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    """Image files and class indices in ImageFolder order (class, then sorted walk); hidden files skipped."""
    files: list[Path] = []
    labels: list[int] = []
    for idx, cls in enumerate(classes):
        class_dir = split_dir / cls
        if not class_dir.is_dir():
            continue
        for dirpath, _, fnames in sorted(os.walk(class_dir, followlinks=True)):
            if not all(_visible(part) for part in Path(dirpath).relative_to(class_dir).parts):
                continue
            for fname in sorted(fnames):
                if _visible(fname) and fname.lower().endswith(IMG_EXTENSIONS):
                    files.append(Path(dirpath) / fname)
                    labels.append(idx)
    return files, labels
