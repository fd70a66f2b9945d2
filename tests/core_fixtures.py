"""Tiny, separable image datasets for fast core tests."""

from __future__ import annotations

import torch

from haba_core import DistillConfig, ImageDataset


def separable_dataset(num_classes: int = 4, per_class: int = 24, channels: int = 1, size: int = 8,
                      seed: int = 0, split: str = "train") -> ImageDataset:
    """Each class is a distinct bright stripe pattern plus noise, values in [0, 1]."""
    g = torch.Generator().manual_seed(seed + (0 if split == "train" else 999))
    images, labels = [], []
    for c in range(num_classes):
        base = torch.zeros(channels, size, size)
        row = (c * size) // num_classes
        base[:, row:row + max(1, size // num_classes), :] = 0.9
        noise = 0.15 * torch.rand((per_class, channels, size, size), generator=g)
        images.append((base + noise).clamp(0, 1))
        labels.append(torch.full((per_class,), c, dtype=torch.long))
    x = torch.cat(images)
    mean = tuple(float(v) for v in x.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in x.std(dim=(0, 2, 3)))
    return ImageDataset("separable", x, torch.cat(labels), [str(c) for c in range(num_classes)], mean, std, split)


def tiny_config(**overrides) -> DistillConfig:
    """A DistillConfig that runs in a fraction of a second on CPU."""
    base = dict(objective="dm", parameterization="haba", bpc=2, ipc=None, hallucinators=3, iterations=3,
                net_width=8, net_depth=2, device="cpu", seed=0, checkpoint_every=1000)
    base.update(overrides)
    cfg = DistillConfig(**base)
    cfg.dm.batch_real = 8
    cfg.dc.batch_real = 8
    cfg.dc.outer_loop = 2
    cfg.dc.inner_loop = 1
    cfg.dc.batch_train = 16
    return cfg


def expert_buffer(out) -> None:
    """Two 3-epoch expert trajectories on :func:`separable_dataset` (normalised, no DSA) written to ``out``."""
    from haba_core import ExpertConfig, train_experts
    from haba_core.distillation import network_factory

    data = separable_dataset()
    x = (data.images - torch.tensor(data.mean).view(1, -1, 1, 1)) / torch.tensor(data.std).view(1, -1, 1, 1)
    train_experts(x, data.labels, network_factory(tiny_config(), data.image_shape, 4, torch.device("cpu")), out,
                  ExpertConfig(num_experts=2, epochs=3, dsa=False), {})
