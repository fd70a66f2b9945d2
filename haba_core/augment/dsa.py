"""Differentiable siamese augmentation (Zhao & Bilen 2021): sample parameters once, apply them to many batches."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import ConfigError, UnknownNameError
from .ops import GROUPS, HOST_UNIFORMS, OPS


@dataclass
class DSAConfig:
    """Strength of every op (defaults of ``ParamDiffAug``).

    ``single_op`` (default, the reference code's mode "S") samples one strategy token per call; ``False``
    applies every listed op in order (mode "M").
    """

    strategy: str = "color_crop_cutout_flip_scale_rotate"
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    prob_flip: float = 0.5
    single_op: bool = True


@dataclass
class DSAParams:
    """Sampled parameters: for each op in ``ops``, CPU-sampled uniforms of first dimension ``batch_size``.

    ``batch_size == 1`` means one transform shared by every sample of any batch.
    """

    batch_size: int
    ops: tuple[str, ...] = ()
    values: dict[str, Tensor] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> "DSAParams":
        """A copy with the tensors on ``device``."""
        return DSAParams(self.batch_size, self.ops, {k: v.to(device) for k, v in self.values.items()})


def parse_strategy(strategy: str) -> tuple[tuple[str, ...], ...]:
    """Split ``"color_crop_..."`` into groups of op names; ``""``/``"none"`` gives no ops."""
    if not strategy or strategy.lower() == "none":
        return ()
    groups = []
    for token in strategy.lower().split("_"):
        if token not in GROUPS:
            raise UnknownNameError(f"unknown DSA op {token!r} in {strategy!r}; known: {', '.join(GROUPS)}")
        groups.append(GROUPS[token])
    return tuple(groups)


class DSA:
    """Differentiable siamese augmentation; randomness is drawn on CPU so CPU and CUDA agree for a seed."""

    def __init__(self, config: DSAConfig | None = None):
        self.config = config if config is not None else DSAConfig()
        c = self.config
        if c.ratio_scale < 1 or c.ratio_rotate < 0 or not 0 <= c.ratio_crop_pad < 1 or not 0 <= c.ratio_cutout <= 1:
            raise ConfigError(f"invalid DSA ratios in {c}")
        self.groups = parse_strategy(c.strategy)
        self.ops: tuple[str, ...] = tuple(op for group in self.groups for op in group)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> DSAParams:
        """Draw parameters for ``batch_size`` samples (1 = shared) from ``generator`` on CPU."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        ops = self.ops
        if self.config.single_op and self.groups:
            pick = int(torch.randint(len(self.groups), (1,), generator=generator).item())
            ops = self.groups[pick]
        values = {}
        for op in ops:
            width = OPS[op][1]
            shape = (batch_size,) if width == 1 else (batch_size, width)
            values[op] = torch.rand(shape, generator=generator)
        return DSAParams(batch_size, ops, values)

    def apply(self, x: Tensor, params: DSAParams) -> Tensor:
        """Apply ``params`` to ``x`` (N×C×H×W), op after op in strategy order; differentiable in ``x``."""
        if x.dim() != 4:
            raise ValueError(f"DSA expects N×C×H×W images, got shape {tuple(x.shape)}")
        if params.batch_size not in (1, x.shape[0]):
            raise ValueError(f"DSA params for batch size {params.batch_size} cannot apply to a batch of {x.shape[0]}")
        for op in params.ops:
            u = params.values[op] if op in HOST_UNIFORMS else params.values[op].to(x.device)
            x = OPS[op][0](x, u, self.config)
        return x

    def __call__(self, x: Tensor, generator: torch.Generator | None = None, shared: bool = False) -> Tensor:
        """Sample (one shared transform if ``shared``, else one per sample) and apply."""
        return self.apply(x, self.sample(1 if shared else x.shape[0], generator))

    def __repr__(self) -> str:
        return f"DSA(ops={self.ops}, single_op={self.config.single_op})"
