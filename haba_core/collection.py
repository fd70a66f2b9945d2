"""A union of factorized datasets, each composing only with its own hallucinators.

Continual learning keeps one factorized memory per experience; a federated server receives one per
client. ``FactorizedCollection`` trains on all of them at once with online composition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from .budget import StorageReport
from .atomic import write_json
from .errors import ConfigError, FormatError
from .factorized_dataset import FactorizedDataset
from .json_document import read_json_document

COLLECTION_FILE = "collection.json"
COLLECTION_FORMAT = "haba-factorized-collection"
MAX_PARTS = 100_000


class FactorizedCollection:
    """Several :class:`FactorizedDataset` parts sharing classes, image shape and preprocessing."""

    def __init__(self, parts: Sequence[FactorizedDataset]):
        if not parts:
            raise ConfigError("a factorized collection needs at least one part")
        first = parts[0]
        for p in parts[1:]:
            if p.image_shape != first.image_shape or p.num_classes != first.num_classes:
                raise ConfigError("all parts of a collection must share image shape and number of classes")
        self.parts = list(parts)
        self.preprocessor = first.preprocessor
        self.classes = first.classes
        lrs = [p.learned_lr for p in parts if p.learned_lr is not None]
        self.learned_lr = sum(lrs) / len(lrs) if lrs else None
        networks = {p.learned_lr_network for p in parts if p.learned_lr is not None}
        # the parts' common network; None (unknown) when they disagree or do not say
        self.learned_lr_network = networks.pop() if len(networks) == 1 else None

    @property
    def num_classes(self) -> int:
        return self.parts[0].num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.parts[0].image_shape

    @property
    def num_hallucinators(self) -> int:
        return 0  # hallucinators differ per part; downstream L_con is not defined across parts

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def to(self, device: torch.device | str) -> "FactorizedCollection":
        for p in self.parts:
            p.to(device)
        return self

    def sample_epoch(self, generator: torch.Generator | None = None, per_basis: int = 1) -> tuple[Tensor, Tensor]:
        """Every basis of every part through a random hallucinator of its own part."""
        xs, ys = zip(*(p.sample_epoch(generator, per_basis) for p in self.parts))
        return torch.cat(xs), torch.cat(ys)

    def materialize(self) -> tuple[Tensor, Tensor]:
        xs, ys = zip(*(p.materialize() for p in self.parts))
        return torch.cat(xs), torch.cat(ys)

    def save(self, directory: str | Path, labels: Sequence[dict[str, Any]] | None = None) -> Path:
        """``collection.json`` plus one ``part-NNN/`` per part in :meth:`FactorizedDataset.save`'s format;
        ``labels`` (one JSON-able dict per part, e.g. the client it came from) are kept in the JSON."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        labels = list(labels) if labels is not None else [{} for _ in self.parts]
        if len(labels) != len(self.parts):
            raise ConfigError(f"{len(labels)} labels for {len(self.parts)} parts")
        dirs = save_parts(self.parts, directory)
        doc = {"format": COLLECTION_FORMAT, "num_parts": len(self.parts), "num_bases": len(self),
               "parts": [{"dir": d, **dict(lab)} for d, lab in zip(dirs, labels)]}
        write_json(directory / COLLECTION_FILE, doc)
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> "FactorizedCollection":
        """Load a saved collection (every part validated by :meth:`FactorizedDataset.load`)."""
        directory = Path(directory)
        path = directory / COLLECTION_FILE
        doc = read_json_document(path, COLLECTION_FORMAT, "a factorized collection")
        try:
            dirs = [str(p["dir"]) for p in doc["parts"]]
        except (AttributeError, KeyError, TypeError) as exc:
            raise FormatError(f"{path} is not a valid collection description ({exc})") from None
        if not 0 < len(dirs) <= MAX_PARTS or any(Path(d).name != d or d in ("", ".", "..") for d in dirs):
            raise FormatError(f"{path}: parts must be 1..{MAX_PARTS} plain sub-directory names")
        return cls([FactorizedDataset.load(directory / d, device=device) for d in dirs])

    def storage(self) -> StorageReport:
        reports = [p.storage() for p in self.parts]
        first = reports[0]
        return StorageReport(bases=sum(r.bases for r in reports), hallucinators=sum(r.hallucinators for r in reports),
                             extra=sum(r.extra for r in reports), label_bytes=sum(r.label_bytes for r in reports),
                             image_numel=first.image_numel, num_classes=first.num_classes)


def save_parts(parts: Sequence[FactorizedDataset], directory: str | Path) -> list[str]:
    """Save each dataset as ``directory/part-NNN`` (the :class:`FactorizedDataset` format); return the folder names."""
    names = [f"part-{i:03d}" for i in range(len(parts))]
    for name, part in zip(names, parts):
        part.save(Path(directory) / name)
    return names
