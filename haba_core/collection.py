"""A union of factorized datasets, each composing only with its own hallucinators.

Continual learning keeps one factorized memory per experience; a federated server receives one per
client. ``FactorizedCollection`` trains on all of them at once with online composition.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .budget import StorageReport
from .errors import ConfigError
from .factorized import FactorizedDataset


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

    def storage(self) -> StorageReport:
        reports = [p.storage() for p in self.parts]
        first = reports[0]
        return StorageReport(bases=sum(r.bases for r in reports), hallucinators=sum(r.hallucinators for r in reports),
                             extra=sum(r.extra for r in reports), label_bytes=sum(r.label_bytes for r in reports),
                             image_numel=first.image_numel, num_classes=first.num_classes)
