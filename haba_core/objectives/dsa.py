"""Gradient matching with differentiable siamese augmentation (DSA, Zhao & Bilen 2021)."""

from __future__ import annotations

from .base import ObjectiveContext
from .dc import DCConfig, DCObjective
from .registry import ObjectiveSpec, register


class DSAObjective(DCObjective):
    """DC where each class's real and synthetic batches get the same random augmentation."""

    name = "dsa"
    siamese = True

    def __init__(self, ctx: ObjectiveContext, config: DCConfig | None = None):
        if ctx.dsa is None:
            raise ValueError("the dsa objective needs a DSA augmenter in its context")
        super().__init__(ctx, config)


register(ObjectiveSpec("dsa", lambda cfg, ctx, _trajectories: DSAObjective(ctx, cfg.dc), lr_bases=0.1, dsa="always",
                       summary="gradient matching with siamese augmentation (Zhao & Bilen 2021)"))
