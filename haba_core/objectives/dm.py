"""Distribution matching (Zhao & Bilen, 2023): match class-wise mean embeddings of random networks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import Objective, ObjectiveContext


@dataclass
class DMConfig:
    """``batch_real`` real images per class per iteration (the DM code uses 256)."""

    batch_real: int = 256


class DMObjective(Objective):
    """Σ_c ‖mean ψ(real_c) − mean ψ(syn_c)‖² through a freshly initialised network each iteration."""

    name = "dm"

    def __init__(self, ctx: ObjectiveContext, config: DMConfig | None = None):
        super().__init__(ctx)
        self.config = config or DMConfig()

    def loss(self, images: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        net = self.ctx.make_network(generator)
        net.train()
        for p in net.parameters():
            p.requires_grad_(False)
        total = images.new_zeros(())
        for _, real, syn in self.class_batches(images, labels, self.config.batch_real, generator):
            with torch.no_grad():
                emb_real = net.embed(real).mean(0)
            emb_syn = net.embed(syn).mean(0)
            total = total + ((emb_real - emb_syn) ** 2).sum()
        return total
