"""The objective interface (L_DD) and what every objective gets to work with."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator

import torch
from torch import Tensor, nn

from ..augment import DSA

SyntheticSampler = Callable[[], tuple[Tensor, Tensor]]
NetworkFactory = Callable[[torch.Generator], nn.Module]


class RealPool:
    """Preprocessed real training images grouped by class, for sampling real batches."""

    def __init__(self, images: Tensor, labels: Tensor, num_classes: int):
        self.images, self.labels, self.num_classes = images, labels, num_classes
        self.by_class = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]

    def sample(self, c: int, n: int, generator: torch.Generator) -> Tensor:
        """``n`` random images of class ``c`` (without replacement, fewer if the class is smaller)."""
        idx = self.by_class[c]
        if idx.numel() == 0:
            return self.images[:0]
        pick = torch.randperm(idx.numel(), generator=generator)[:n]
        return self.images[idx[pick.to(idx.device)]]

    def sample_any(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        pick = torch.randperm(self.labels.numel(), generator=generator)[:n].to(self.labels.device)
        return self.images[pick], self.labels[pick]


@dataclass
class ObjectiveContext:
    """Everything an objective needs besides its own config. ``forward_context()`` is the context every forward
    pass of the objective's networks runs in (bfloat16 autocast under ``DistillConfig.precision="bf16"``);
    objectives turn the outputs to float32 before computing a loss from them."""

    real: RealPool
    num_classes: int
    image_shape: tuple[int, int, int]
    make_network: NetworkFactory
    dsa: DSA | None
    device: torch.device
    forward_context: Callable[[], ContextManager] = contextlib.nullcontext


class Objective:
    """L_DD: a differentiable loss of composed synthetic images that pulls them towards the real data."""

    name = "base"

    def __init__(self, ctx: ObjectiveContext):
        self.ctx = ctx

    def loss(self, images: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def forward(self, network: Callable[..., Tensor], *inputs) -> Tensor:
        """``network(*inputs)`` in the run's forward context (bfloat16 autocast under ``precision="bf16"``),
        returned as float32 so that losses are computed in float32 (a no-op in float32 runs)."""
        with self.ctx.forward_context():
            out = network(*inputs)
        return out.float()

    def after_update(self, sample_synthetic: SyntheticSampler, generator: torch.Generator) -> None:
        """Hook run after each synthetic update (DC trains its network here)."""

    def after_step(self) -> None:
        """Hook run right after the optimisers stepped (MTT clamps its learned lr here)."""

    def extra_parameters(self) -> list[nn.Parameter]:
        """Learnable parameters the objective owns and that must be stored (MTT's learning rate)."""
        return []

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def learned_lr(self) -> float | None:
        return None

    def class_batches(self, images: Tensor, labels: Tensor, batch_real: int, generator: torch.Generator,
                      siamese: bool = True) -> Iterator[tuple[int, Tensor, Tensor]]:
        """Yield (class, real batch, synthetic images) for every class with both, siamese-augmented."""
        on_host = labels.detach().cpu()  # one device→host copy instead of a boolean mask (a sync) per class
        for c in range(self.ctx.num_classes):
            index = torch.nonzero(on_host == c).flatten()
            if index.numel() == 0:
                continue
            syn = images[index.to(images.device)]
            real = self.ctx.real.sample(c, batch_real, generator)
            if real.shape[0] == 0:
                continue
            if siamese:
                real, syn = self._augment_pair(real, syn, generator)
            yield c, real, syn

    def _augment_pair(self, real: Tensor, syn: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Siamese augmentation: exactly the same DSA parameters on the real and the synthetic batch."""
        if self.ctx.dsa is None:
            return real, syn
        params = self.ctx.dsa.sample(1, generator)
        return self.ctx.dsa.apply(real, params), self.ctx.dsa.apply(syn, params)


def seeded_network(make: Callable[[], nn.Module], generator: torch.Generator, device: torch.device) -> nn.Module:
    """Build a network whose initialisation is drawn from ``generator`` (same on CPU and CUDA)."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        net = make()
    finally:
        torch.random.set_rng_state(state)
    return net.to(device)
