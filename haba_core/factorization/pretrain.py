"""Hallucinators pretrained on real data: learn the transformations between similar images of one class.

Before distillation, every real image ``x`` is paired with one of its ``neighbours`` nearest same-class
images ``x'`` (pixel space, within a seeded subset of each class). The bank then learns, from the bases'
point of view, to turn ``x`` — reduced to the basis shape and up-sampled as a basis is — into ``x'``, with a
relaxed winner-take-all loss: each pair trains mostly the hallucinator that already maps it best, so the
hallucinators specialise on different kinds of within-class change instead of all learning the average.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

#: weight of the mean over hallucinators next to the winner's error (keeps every hallucinator learning)
RELAXATION = 0.05


def to_basis_shape(images: Tensor, basis_shape: tuple[int, int, int]) -> Tensor:
    """Images channel-averaged and area-resized to ``basis_shape`` (c', h', w'), as a basis initialised from them."""
    c_b, h_b, w_b = basis_shape
    if images.shape[1] != c_b:
        images = images.mean(1, keepdim=True).expand(-1, c_b, -1, -1)
    if tuple(images.shape[-2:]) != (h_b, w_b):
        images = F.interpolate(images, size=(h_b, w_b), mode="area")
    return images


def neighbour_pairs(images: Tensor, labels: Tensor, neighbours: int, generator: torch.Generator,
                    per_class: int = 1000) -> tuple[Tensor, Tensor]:
    """Indices ``(source, target)``: each image of a seeded subset of ``per_class`` images per class paired with
    each of its ``neighbours`` nearest other images of the same class in that subset (Euclidean, pixels)."""
    if neighbours < 1:
        raise ConfigError(f"hallucinator_pretrain_neighbours must be >= 1, got {neighbours}")
    sources, targets = [], []
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero().flatten()
        if idx.numel() < 2:
            continue
        idx = idx[torch.randperm(idx.numel(), generator=generator)[:per_class].to(idx.device)]
        flat = images[idx].flatten(1).float()
        dist = torch.cdist(flat, flat)
        dist.fill_diagonal_(float("inf"))
        k = min(neighbours, idx.numel() - 1)
        near = dist.topk(k, largest=False).indices  # (n, k)
        sources.append(idx.repeat_interleave(k))
        targets.append(idx[near.flatten()])
    if not sources:
        raise ConfigError("pretraining hallucinators needs at least two real images of some class")
    return torch.cat(sources), torch.cat(targets)


def pretrain_hallucinators(synth, images: Tensor, labels: Tensor, *, steps: int, lr: float = 1e-3,
                           neighbours: int = 5, batch: int = 256,
                           generator: torch.Generator | None = None) -> list[float]:
    """Train ``synth.hallucinators`` in place for ``steps`` Adam steps on real neighbour pairs (module docstring).

    ``images`` are real training images in the model input space, ``labels`` their classes. Returns the
    loss of every step. The bases are not touched.
    """
    bank = synth.hallucinators
    if bank is None:
        raise ConfigError("pretraining hallucinators needs a factorized parameterization (haba or idc-haba)")
    if steps < 0 or lr <= 0 or batch < 1:
        raise ConfigError(f"hallucinator pretraining needs steps >= 0, lr > 0 and batch >= 1 "
                          f"(got {steps}, {lr}, {batch})")
    generator = generator or torch.Generator().manual_seed(0)
    source, target = neighbour_pairs(images, labels, neighbours, generator)
    n_h = synth.num_hallucinators
    optimizer = torch.optim.Adam(bank.parameters(), lr=lr)
    losses: list[float] = []
    for _ in range(int(steps)):
        pick = torch.randint(source.numel(), (batch,), generator=generator).to(source.device)
        src, dst = source[pick], target[pick]
        x = synth.upsample(to_basis_shape(images[src], synth.basis_shape))
        errors = []
        for k in range(n_h):
            index = labels[src] * n_h + k if synth.per_class else k  # an int: one hallucinator for the batch
            errors.append((bank(x, index) - images[dst]).pow(2).flatten(1).mean(1))
        err = torch.stack(errors)  # (n_h, batch)
        loss = (1 - RELAXATION) * err.min(0).values.mean() + RELAXATION * err.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses
