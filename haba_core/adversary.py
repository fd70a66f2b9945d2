"""Adversarial contrastive constraint (paper Sec. 3.2, Eq. 3–6).

An adversary F (a copy of the distillation architecture with its own SGD optimiser) learns
L_F = λ_con·L_con + λ_task·L_task on composed images, pulling together features of the same basis
through different hallucinators (supervised contrastive; same-class samples are positives too).
The synthetic set in turn minimises L_cos, the cosine similarity of F's features for two different
hallucinators applied to the same basis, which pushes hallucinators apart.

Normalisation ``"paper"`` is Eq. 3/5's 1/|H'|² over the ordered pairs j ≠ k of the |H'| hallucinators each
basis went through (= (|H'|−1)/|H'| times the mean over pairs, i.e. half of it at |H'| = 2); ``"mean"``
averages over pairs / anchors (the toolkit before issue 15).
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn


NORMALIZATIONS = ("paper", "mean")


def _pair_factor(basis_index: Tensor, normalization: str) -> float:
    """(|H'|−1)/|H'| for "paper" (|H'| = rows per basis), 1 for "mean"."""
    if normalization == "mean":
        return 1.0
    if normalization != "paper":
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    per_basis = basis_index.numel() / max(1, torch.unique(basis_index).numel())
    return (per_basis - 1.0) / per_basis if per_basis > 0 else 0.0


def supervised_contrastive_loss(features: Tensor, labels: Tensor, temperature: float = 0.1,
                                groups: Tensor | None = None, normalization: str = "mean") -> Tensor:
    """SupCon loss (Khosla et al.): positives share a label, or share a ``groups`` id (same basis).

    ``features`` (N, D) are L2-normalised inside. Anchors without any positive are ignored. With ``groups``
    and ``normalization="paper"`` the mean over anchors is scaled to Eq. 3's 1/|H'|² (see the module doc).
    """
    z = F.normalize(features, dim=1)
    n = z.shape[0]
    logits = z @ z.t() / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    pos = labels.view(-1, 1) == labels.view(1, -1)
    if groups is not None:
        pos = pos | (groups.view(-1, 1) == groups.view(1, -1))
    pos = pos & ~self_mask
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    n_pos = pos.sum(1)
    has = n_pos > 0
    if not bool(has.any()):
        return features.sum() * 0.0
    mean_log_prob_pos = log_prob.masked_fill(~pos, 0.0).sum(1)[has] / n_pos[has]
    factor = _pair_factor(groups, normalization) if groups is not None else 1.0
    return -mean_log_prob_pos.mean() * factor


def pairwise_cosine_loss(features: Tensor, basis_index: Tensor, hallucinator_index: Tensor,
                         normalization: str = "paper") -> Tensor:
    """Cosine similarity of features of the same basis through different hallucinators (Eq. 5).

    ``"paper"``: per basis, the sum over ordered pairs j ≠ k divided by |H'|², averaged over bases;
    ``"mean"``: the mean over all such pairs.
    """
    z = F.normalize(features, dim=1)
    same_basis = basis_index.view(-1, 1) == basis_index.view(1, -1)
    diff_h = hallucinator_index.view(-1, 1) != hallucinator_index.view(1, -1)
    mask = same_basis & diff_h
    if not bool(mask.any()):
        return features.sum() * 0.0
    sim = z @ z.t()
    if normalization == "mean":
        return sim[mask].mean()
    if normalization != "paper":
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    uniq, inverse, rows = torch.unique(basis_index, return_inverse=True, return_counts=True)
    per_row = (sim * mask).sum(1) / rows[inverse].to(sim.dtype) ** 2
    return per_row.sum() / uniq.numel()


class Adversary:
    """The feature extractor F with its optimiser; ``step`` trains it on detached composed images.

    η_F = 0.001 is the paper's; momentum 0.9 is the authors' code's (the paper does not state it).
    """

    def __init__(self, network: nn.Module, lr: float = 0.001, momentum: float = 0.9,
                 lambda_con: float = 0.1, lambda_task: float = 1.0, temperature: float = 0.1,
                 normalization: str = "paper", forward_context: Callable[[], ContextManager] = contextlib.nullcontext):
        self.network = network
        self.forward_context = forward_context  # e.g. bfloat16 autocast (DistillConfig.precision) for F's forward
        self.optimizer = torch.optim.SGD(network.parameters(), lr=lr, momentum=momentum)
        self.lambda_con, self.lambda_task, self.temperature = lambda_con, lambda_task, temperature
        self.normalization = normalization

    def features(self, images: Tensor) -> Tensor:
        """F's penultimate features, as float32 (whatever precision the forward ran in)."""
        with self.forward_context():
            feats = self.network(images, return_features=True)[1]
        return feats.float()

    def loss(self, images: Tensor, labels: Tensor, basis_index: Tensor) -> Tensor:
        with self.forward_context():
            logits, feats = self.network(images, return_features=True)
        logits, feats = logits.float(), feats.float()
        total = images.new_zeros(())
        if self.lambda_con:
            total = total + self.lambda_con * supervised_contrastive_loss(feats, labels, self.temperature,
                                                                          groups=basis_index,
                                                                          normalization=self.normalization)
        if self.lambda_task:
            total = total + self.lambda_task * F.cross_entropy(logits, labels)
        return total

    def step(self, images: Tensor, labels: Tensor, basis_index: Tensor,
             augment: Callable[[Tensor], Tensor] | None = None) -> float:
        """One update of F on L_F = λ_con·L_con + λ_task·L_task (inputs ``augment``-ed first); returns the loss."""
        if not (self.lambda_con or self.lambda_task):
            return 0.0
        self.network.train()
        images = images.detach()
        if augment is not None:
            images = augment(images)
        loss = self.loss(images, labels, basis_index)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def renew(self, network: nn.Module) -> None:
        """Replace F by ``network`` (a fresh draw) with a fresh optimiser (``DistillConfig.adversary_renew``)."""
        self.network = network
        self.optimizer = torch.optim.SGD(network.parameters(), lr=self.optimizer.defaults["lr"],
                                         momentum=self.optimizer.defaults["momentum"])

    def state_dict(self) -> dict:
        return {"network": self.network.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
