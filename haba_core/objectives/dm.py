"""Distribution matching (Zhao & Bilen, 2023): match class-wise mean embeddings of random networks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError
from .base import Objective, ObjectiveContext
from .registry import ObjectiveSpec, register


@dataclass
class DMConfig:
    """``batch_real`` real images per class per iteration (the DM code uses 256).

    ``match`` ``"mean"`` (DM: class means of the embeddings) or ``"mmd"``: the mean term plus a
    Gaussian-kernel MMD² between the real and synthetic embeddings of each class (as in M3D, Zhang et al.
    2024), which also matches their spread and shape — so a set whose hallucinations cover the class
    distribution scores better than one whose hallucinations collapse onto the mean. The kernel bandwidths
    are ``mmd_bandwidths`` × the mean squared distance between the real embeddings (median-style heuristic),
    and the MMD² is multiplied by that distance so that both terms have the same units.
    """

    batch_real: int = 256
    match: str = "mean"
    mmd_bandwidths: tuple[float, ...] = (0.5, 1.0, 2.0)
    mmd_weight: float = 1.0


class DMObjective(Objective):
    """Σ_c ‖mean ψ(real_c) − mean ψ(syn_c)‖² through a freshly initialised network each iteration."""

    name = "dm"

    def __init__(self, ctx: ObjectiveContext, config: DMConfig | None = None):
        super().__init__(ctx)
        self.config = config or DMConfig()
        if self.config.match not in ("mean", "mmd"):
            raise ConfigError(f"dm.match must be mean|mmd, got {self.config.match!r}")
        if not self.config.mmd_bandwidths or min(self.config.mmd_bandwidths) <= 0 or self.config.mmd_weight < 0:
            raise ConfigError("dm.mmd_bandwidths must be positive numbers and dm.mmd_weight >= 0")

    def loss(self, images: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        net = self.ctx.make_network(generator)
        net.train()
        for p in net.parameters():
            p.requires_grad_(False)
        total = images.new_zeros(())
        for _, real, syn in self.class_batches(images, labels, self.config.batch_real, generator):
            with torch.no_grad():
                feat_real = self.forward(net.embed, real)
            feat_syn = self.forward(net.embed, syn)
            total = total + ((feat_real.mean(0) - feat_syn.mean(0)) ** 2).sum()
            if self.config.match == "mmd":
                total = total + self.config.mmd_weight * gaussian_mmd(feat_real, feat_syn, self.config.mmd_bandwidths)
        return total


def gaussian_mmd(real: Tensor, syn: Tensor, bandwidths: tuple[float, ...]) -> Tensor:
    """Scale-matched Gaussian-kernel MMD² (biased estimator) between two sets of feature rows.

    The bandwidth unit is the mean squared distance between real rows (no gradient); the result is
    multiplied by it, so for nearby sets it behaves like the squared distance of the means.
    """
    d_rr = torch.cdist(real, real).pow(2)
    scale = d_rr.mean().clamp_min(1e-12).detach()
    d_ss = torch.cdist(syn, syn).pow(2)
    d_rs = torch.cdist(real, syn).pow(2)
    mmd = real.new_zeros(())
    for b in bandwidths:
        s = 2.0 * b * scale
        mmd = mmd + (-d_rr / s).exp().mean() + (-d_ss / s).exp().mean() - 2.0 * (-d_rs / s).exp().mean()
    return mmd * scale / len(bandwidths)


register(ObjectiveSpec("dm", lambda cfg, ctx, _trajectories: DMObjective(ctx, cfg.dm), lr_bases=1.0,
                       dsa="default-on", dm_scaled_lr=True, summary="distribution matching (Zhao & Bilen 2023)"))
