"""The global model (the clients' distillation network), its weights on the CPU, its evaluation.

Normalisation: every party uses the dataset's own per-channel mean/std (``ImageDataset.mean/std``, the
statistics of the full train split, which every partition inherits). ZCA whitening is refused in
federated mode because each client would fit different statistics.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from haba_core import ImageDataset, Preprocessor, network_factory, test_accuracy

from .distill_settings import distill_config


def build_model(cfg: Mapping[str, Any], image_shape: tuple[int, int, int], num_classes: int,
                seed: int | None = None) -> nn.Module:
    """The global model: exactly the distillation network of ``distill_config(cfg)``, seeded."""
    dcfg = distill_config(cfg)
    make = network_factory(dcfg, tuple(image_shape), num_classes, torch.device("cpu"))
    return make(torch.Generator().manual_seed(int(cfg["seed"] if seed is None else seed)))


def state_dict_cpu(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def evaluate_model(model: nn.Module, data: ImageDataset, preprocessor: Preprocessor,
                   device: str | torch.device = "cpu") -> tuple[float, float]:
    """(accuracy %, mean cross-entropy) of ``model`` on ``data`` normalised by ``preprocessor``."""
    if len(data) == 0:
        return 0.0, 0.0
    model = model.to(device)
    x = preprocessor(data.images.to(device))
    y = data.labels.to(device)
    acc = test_accuracy(model, x, y)
    with torch.no_grad():
        loss = 0.0
        for start in range(0, x.shape[0], 1024):
            out = model(x[start:start + 1024])
            loss += float(torch.nn.functional.cross_entropy(out, y[start:start + 1024], reduction="sum"))
    return acc, loss / x.shape[0]


def preprocessor_for(data: ImageDataset) -> Preprocessor:
    """Per-channel normalisation with the dataset's statistics (never ZCA in federated mode)."""
    return Preprocessor(tuple(data.mean), tuple(data.std))
