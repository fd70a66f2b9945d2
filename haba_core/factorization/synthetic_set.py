"""The learnable synthetic set: bases (+ optional hallucinators) for every parameterization.

``plain``  — bases are ordinary synthetic images (the baseline).
``idc``    — bases are down-sampled by ``downsample`` and up-sampled parameter-free (Kim et al.).
``haba``   — bases go through hallucinators (paper Eq. 1–2).
``idc-haba`` — down-sampled bases, up-sampled, then hallucinated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, UnknownNameError
from .hallucinator import HallucinatorBank, HallucinatorConfig, pca_shifts

PARAMETERIZATIONS = ("haba", "plain", "idc", "idc-haba")


def check_parameterization(name: str) -> str:
    key = name.lower().replace("_", "-")
    if key not in PARAMETERIZATIONS:
        raise UnknownNameError(f"unknown parameterization {name!r}; known: {', '.join(PARAMETERIZATIONS)}")
    return key


class SyntheticSet(nn.Module):
    """Bases with their labels and, for HaBa, a bank of hallucinators.

    ``bases`` has shape (B, c', h', w'); ``image_shape`` = (c, h, w) of the composed images.
    With ``per_class=True`` the bank holds ``num_hallucinators`` hallucinators *per class* and a basis
    only uses its own class's (paper Tab. 5); otherwise all classes share them.
    """

    def __init__(self, bases: Tensor, labels: Tensor, image_shape: tuple[int, int, int], num_classes: int,
                 num_hallucinators: int = 0, hallucinator_config: HallucinatorConfig | None = None,
                 per_class: bool = False, generator: torch.Generator | None = None):
        super().__init__()
        if bases.ndim != 4:
            raise ConfigError(f"bases must be B×C×H×W, got shape {tuple(bases.shape)}")
        if labels.shape != (bases.shape[0],):
            raise ConfigError("labels must have one entry per basis")
        self.bases = nn.Parameter(bases.detach().clone().float())
        self.register_buffer("labels", labels.detach().clone().long())
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_classes = int(num_classes)
        self.num_hallucinators = int(num_hallucinators)
        self.per_class = bool(per_class) and self.num_hallucinators > 0
        self.hallucinator_config = hallucinator_config or HallucinatorConfig()
        if self.num_hallucinators > 0:
            count = self.num_hallucinators * (self.num_classes if self.per_class else 1)
            self.hallucinators: HallucinatorBank | None = HallucinatorBank(
                count, bases.shape[1], self.image_shape[0], self.image_shape[1:], self.hallucinator_config,
                generator=generator)
            if self.hallucinator_config.init in ("identity", "pca"):
                self.hallucinators.reset_parameters(generator, inputs=self.upsample(self.bases.detach()))
        else:
            if bases.shape[1] != self.image_shape[0]:
                raise ConfigError("bases with fewer channels than the image need hallucinators (param haba/idc-haba)")
            self.hallucinators = None

    def init_hallucinators_from_data(self, images: Tensor, labels: Tensor,
                                     generator: torch.Generator | None = None) -> None:
        """The "pca" init: shift each hallucinator along a principal direction of within-class variation.

        ``images`` are real training images in the model input space. Per-class hallucinators use their
        own class's directions.
        """
        if self.hallucinators is None:
            return
        scale = self.hallucinator_config.pca_scale
        n = self.num_hallucinators
        if self.per_class:
            parts = []
            for c in range(self.num_classes):
                m = labels == c
                parts.append(pca_shifts(images[m], labels[m], n, scale, generator))
            shifts = torch.cat(parts)
        else:
            shifts = pca_shifts(images, labels, n, scale, generator)
        self.hallucinators.set_output_shift(shifts)

    # ------------------------------------------------------------------ properties
    @property
    def num_bases(self) -> int:
        return self.bases.shape[0]

    @property
    def basis_shape(self) -> tuple[int, int, int]:
        return tuple(self.bases.shape[1:])  # type: ignore[return-value]

    @property
    def is_factorized(self) -> bool:
        return self.hallucinators is not None

    # ------------------------------------------------------------------ composition
    def upsample(self, x: Tensor) -> Tensor:
        """Bases (or anything at basis resolution) bilinearly up-sampled to the image size; as is when already there."""
        if tuple(x.shape[-2:]) == tuple(self.image_shape[1:]):
            return x
        return F.interpolate(x, size=self.image_shape[1:], mode="bilinear", align_corners=False)

    def bank_index(self, basis_index: Tensor, hallucinator: Tensor) -> Tensor:
        """Map (basis, hallucinator-in-its-set) pairs to indices in the bank."""
        if not self.per_class:
            return hallucinator
        return self.labels[basis_index] * self.num_hallucinators + hallucinator

    def compose(self, basis_index: Tensor, hallucinator: Tensor | None = None) -> Tensor:
        """Images x̃ = H_j(b_i) for pairs (basis_index[k], hallucinator[k]); differentiable.

        ``hallucinator`` holds indices in 0..num_hallucinators-1 (ignored for plain/idc).
        """
        x = self.upsample(self.bases[basis_index])
        if self.hallucinators is None:
            return x
        if hallucinator is None:
            raise ValueError("factorized sets need a hallucinator index per basis")
        return self.hallucinators(x, self.bank_index(basis_index.to(self.labels.device), hallucinator))

    def compose_pairs(self, basis_index: Tensor, hallucinators: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Every basis in ``basis_index`` through every hallucinator in ``hallucinators``.

        Returns images (|H'|·|B'|, c, h, w) ordered hallucinator-major, their labels, and the basis and
        hallucinator index of each row. Plain sets return each basis once.
        """
        if self.hallucinators is None:
            imgs = self.compose(basis_index)
            return imgs, self.labels[basis_index], basis_index, torch.zeros_like(basis_index)
        nb, nh = basis_index.numel(), hallucinators.numel()
        b = basis_index.repeat(nh)
        h = hallucinators.to(basis_index.device).repeat_interleave(nb)
        return self.compose(b, h), self.labels[b], b, h

    def sample_epoch(self, generator: torch.Generator | None = None, per_basis: int = 1) -> tuple[Tensor, Tensor]:
        """Online composition for downstream training, without gradients.

        Each basis goes through ``per_basis`` distinct randomly chosen hallucinators (1 = the paper's
        protocol; ``per_basis >= num_hallucinators`` composes every pair).
        """
        with torch.no_grad():
            idx = torch.arange(self.num_bases, device=self.bases.device)
            if self.hallucinators is None:
                return self.compose(idx), self.labels.clone()
            k = max(1, min(per_basis, self.num_hallucinators))
            if k == 1:
                h = torch.randint(self.num_hallucinators, (self.num_bases,), generator=generator)
            else:
                h = torch.rand((self.num_bases, self.num_hallucinators), generator=generator).argsort(1)[:, :k].t()
                h = h.reshape(-1)
                idx = idx.repeat(k)
            return self.compose(idx, h.to(self.bases.device)), self.labels[idx].clone()

    def materialize(self) -> tuple[Tensor, Tensor]:
        """All |H|×|B| composed images (hallucinator-major) and labels, without gradients."""
        with torch.no_grad():
            idx = torch.arange(self.num_bases, device=self.bases.device)
            if self.hallucinators is None:
                return self.compose(idx), self.labels.clone()
            h = torch.arange(self.num_hallucinators, device=self.bases.device)
            imgs, labels, _, _ = self.compose_pairs(idx, h)
            return imgs, labels

    def stored_parameter_count(self) -> int:
        """Numbers that must be stored: bases plus every hallucinator parameter."""
        n = self.bases.numel()
        if self.hallucinators is not None:
            n += sum(p.numel() for p in self.hallucinators.parameters())
        return n
