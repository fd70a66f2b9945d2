"""Coreset baselines at equal bytes: random and herding selection of real images per class."""

from __future__ import annotations

import torch
from torch import Tensor

from .budget import plan_budget
from .data import ImageDataset
from .errors import UnknownNameError
from .factorization import SyntheticSet
from .factorized_dataset import FactorizedDataset
from .preprocess import Preprocessor

CORESET_METHODS = ("random", "herding")


def herding_select(features: Tensor, k: int) -> Tensor:
    """Greedy herding (Welling 2009): pick ``k`` rows whose running mean best tracks the mean feature."""
    mu = features.mean(0)
    chosen: list[int] = []
    running = torch.zeros_like(mu)
    available = torch.ones(features.shape[0], dtype=torch.bool, device=features.device)
    for t in range(min(k, features.shape[0])):
        target = mu * (t + 1) - running
        dist = ((features - target) ** 2).sum(1).masked_fill(~available, float("inf"))
        i = int(dist.argmin())
        chosen.append(i)
        available[i] = False
        running = running + features[i]
    return torch.tensor(chosen, dtype=torch.long)


def select_coreset(train: ImageDataset, ipc: int, method: str = "random", seed: int = 0, zca: bool = False,
                   features: Tensor | None = None, preprocessor: Preprocessor | None = None) -> FactorizedDataset:
    """``ipc`` real images per class chosen at random or by herding, stored as a plain factorized result.

    Herding works on ``features`` (one row per training image, e.g. embeddings of a trained network) or,
    if none are given, on the preprocessed pixels.
    """
    if method not in CORESET_METHODS:
        raise UnknownNameError(f"unknown coreset method {method!r}; known: {', '.join(CORESET_METHODS)}")
    pre = preprocessor or Preprocessor.fit(train.images, train.mean, train.std, zca)
    images = pre(train.images)
    gen = torch.Generator().manual_seed(seed)
    chosen, labels = [], []
    for c in range(train.num_classes):
        idx = train.class_indices(c)
        if method == "random":
            pick = idx[torch.randperm(idx.numel(), generator=gen)[:ipc]]
        else:
            feats = features[idx] if features is not None else images[idx].flatten(1)
            pick = idx[herding_select(feats, ipc)]
        chosen.append(pick)
        labels.append(torch.full((pick.numel(),), c, dtype=torch.long))
    sel = torch.cat(chosen)
    plan = plan_budget(image_shape=tuple(train.image_shape), num_classes=train.num_classes,
                       parameterization="plain", ipc=ipc)
    synth = SyntheticSet(images[sel], torch.cat(labels), tuple(train.image_shape), train.num_classes)
    meta = {"dataset": train.name, "objective": f"coreset-{method}", "parameterization": "plain", "seed": seed,
            "budget": {"ipc": ipc, "bpc": ipc, "num_hallucinators": 0, "budget_parameters": plan.budget_parameters}}
    return FactorizedDataset(synth, pre, train.classes, meta)
