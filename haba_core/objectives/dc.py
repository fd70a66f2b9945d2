"""Gradient matching (Dataset Condensation, Zhao et al. 2021) with its outer/inner loop."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Objective, ObjectiveContext, SyntheticSampler
from .registry import ObjectiveSpec, register


@dataclass
class DCConfig:
    """``outer_loop`` synthetic updates per network initialisation; ``inner_loop`` network steps on the
    synthetic set after each update (DC code: 10/50 for IPC 10, 1/1 for IPC 1); ``lr_net`` its SGD lr."""

    batch_real: int = 256
    outer_loop: int = 10
    inner_loop: int = 50
    lr_net: float = 0.01
    batch_train: int = 256


def layer_distance(gw_syn: Tensor, gw_real: Tensor) -> Tensor:
    """DC's layer-wise distance: Σ over output channels of (1 − cos) of the flattened gradients.

    One-dimensional parameters (biases, norm affines) are ignored, as in the DC code.
    """
    if gw_real.ndim == 1:
        return gw_syn.new_zeros(())
    a = gw_real.reshape(gw_real.shape[0], -1)
    b = gw_syn.reshape(gw_syn.shape[0], -1)
    return (1 - (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-6)).sum()


def match_loss(gw_syn: list[Tensor], gw_real: list[Tensor]) -> Tensor:
    return sum((layer_distance(s, r) for s, r in zip(gw_syn, gw_real)), gw_syn[0].new_zeros(()))


class DCObjective(Objective):
    """Class-wise gradient matching; the network is re-initialised every ``outer_loop`` iterations."""

    name = "dc"
    siamese = False

    def __init__(self, ctx: ObjectiveContext, config: DCConfig | None = None):
        super().__init__(ctx)
        self.config = config or DCConfig()
        self.net: nn.Module | None = None
        self.net_opt: torch.optim.Optimizer | None = None
        self.step_in_outer = 0

    def _ensure_network(self, generator: torch.Generator) -> nn.Module:
        if self.net is None or self.step_in_outer % self.config.outer_loop == 0:
            self.net = self.ctx.make_network(generator)
            self.net_opt = torch.optim.SGD(self.net.parameters(), lr=self.config.lr_net, momentum=0.5)
            self.step_in_outer = 0
        return self.net

    def loss(self, images: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        net = self._ensure_network(generator)
        net.train()
        params = [p for p in net.parameters() if p.requires_grad]
        total = images.new_zeros(())
        for c, real, syn in self.class_batches(images, labels, self.config.batch_real, generator, self.siamese):
            target_real = torch.full((real.shape[0],), c, dtype=torch.long, device=real.device)
            target_syn = torch.full((syn.shape[0],), c, dtype=torch.long, device=syn.device)
            gw_real = [g.detach() for g in torch.autograd.grad(F.cross_entropy(self.forward(net, real), target_real),
                                                                 params)]
            gw_syn = torch.autograd.grad(F.cross_entropy(self.forward(net, syn), target_syn), params, create_graph=True)
            total = total + match_loss(list(gw_syn), gw_real)
        return total

    def after_update(self, sample_synthetic: SyntheticSampler, generator: torch.Generator) -> None:
        self.step_in_outer += 1
        if self.step_in_outer % self.config.outer_loop == 0 or self.net is None:
            return  # the network is re-initialised next iteration anyway
        images, labels = sample_synthetic()
        images, labels = images.detach(), labels.detach()
        for _ in range(self.config.inner_loop):
            perm = torch.randperm(images.shape[0], generator=generator)[: self.config.batch_train].to(images.device)
            x = images[perm]
            if self.siamese and self.ctx.dsa is not None:
                x = self.ctx.dsa(x, generator=generator)
            loss = F.cross_entropy(self.forward(self.net, x), labels[perm])
            self.net_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.net_opt.step()

    def state_dict(self) -> dict:
        if self.net is None:
            return {"step_in_outer": self.step_in_outer}
        return {"step_in_outer": self.step_in_outer, "net": self.net.state_dict(),
                "net_opt": self.net_opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.step_in_outer = int(state.get("step_in_outer", 0))
        if "net" in state:
            # rebuild the network object, then overwrite its weights with the saved ones
            gen = torch.Generator().manual_seed(0)
            self.net = self.ctx.make_network(gen)
            self.net.load_state_dict(state["net"])
            self.net_opt = torch.optim.SGD(self.net.parameters(), lr=self.config.lr_net, momentum=0.5)
            self.net_opt.load_state_dict(state["net_opt"])


register(ObjectiveSpec("dc", lambda cfg, ctx, _trajectories: DCObjective(ctx, cfg.dc), lr_bases=0.1,
                       summary="gradient matching (Zhao et al. 2021)"))
