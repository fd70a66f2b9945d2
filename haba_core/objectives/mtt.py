"""Trajectory matching (MTT, Cazenavette et al. 2022; paper Eq. 7) with a learnable, positive lr."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..errors import ConfigError, FormatError
from .base import Objective, ObjectiveContext
from .experts import load_buffer
from .registry import ObjectiveSpec, register


@dataclass
class MTTConfig:
    """``syn_steps`` N unrolled student steps, ``expert_epochs`` M expert epochs to match, start epochs
    drawn below ``max_start_epoch``; ``lr_init`` initial synthetic lr α; ``lr_lr`` its learning rate (α itself
    is the parameter, stepped by SGD with momentum 0.5 as in MTT, then clamped at ``lr_min`` so it stays
    positive); ``batch_syn`` synthetic minibatch per unrolled step (None = all).

    ``composition`` sets the work of one unrolled step for factorized (HaBa) sets. ``"per_step"`` (the
    paper and its reference code; the default): every unrolled step draws ``batch_syn`` bases (None = all
    B bases) and composes each through one freshly drawn random hallucinator, so a step trains on B images.
    ``"pairs"`` (this toolkit's behaviour before issue 19): the step's |H'|·B composed pairs are made once
    and every unrolled step trains on ``batch_syn`` of them (None = all |H'|·B images: twice the work per
    step at ``hallucinators_per_step`` 2). ``"per_step_shared"``: as ``"per_step"`` but one random
    hallucinator for all bases of a step — the draw of the public code derived from the paper's (the paper
    itself does not say; same work per step as ``"per_step"``). Plain sets are unaffected."""

    buffer: str | None = None
    syn_steps: int = 20
    expert_epochs: int = 2
    max_start_epoch: int = 20
    lr_init: float = 0.01
    lr_lr: float = 1e-5
    lr_min: float = 1e-4
    batch_syn: int | None = None
    composition: str = "per_step"


COMPOSITIONS = ("per_step", "per_step_shared", "pairs")
#: the compositions that compose afresh in every unrolled step (one hallucination per basis per step)
PER_STEP_COMPOSITIONS = ("per_step", "per_step_shared")

# draw(idx) -> (images, labels) of the unrolled step's minibatch ``idx`` (indices in 0..n-1)
StepDraw = Callable[[Tensor], tuple[Tensor, Tensor]]


class MTTObjective(Objective):
    """‖θ̂_{t+N} − θ*_{t+M}‖² / ‖θ*_t − θ*_{t+M}‖² with θ̂ unrolled functionally on synthetic data."""

    name = "mtt"

    def __init__(self, ctx: ObjectiveContext, config: MTTConfig | None = None,
                 trajectories: list[Tensor] | None = None):
        super().__init__(ctx)
        self.config = config or MTTConfig()
        if trajectories is None:
            if not self.config.buffer:
                raise ConfigError("trajectory matching needs an expert buffer: pass --buffer DIR (see haba-buffer)")
            _, trajectories = load_buffer(self.config.buffer)
        self.trajectories = trajectories
        gen = torch.Generator().manual_seed(0)
        self.net = ctx.make_network(gen)
        self.names = [n for n, _ in self.net.named_parameters()]
        self.shapes = [p.shape for _, p in self.net.named_parameters()]
        n_params = sum(math.prod(s) for s in self.shapes)
        if trajectories[0].shape[1] != n_params:
            raise FormatError(f"expert trajectories have {trajectories[0].shape[1]} parameters but the distillation "
                              f"network has {n_params}: the buffer was made with another network or dataset")
        epochs = trajectories[0].shape[0] - 1
        if self.config.expert_epochs >= epochs + 1 or self.config.expert_epochs < 1:
            raise ConfigError(f"expert_epochs={self.config.expert_epochs} needs a buffer with more than that many "
                              f"epochs (it has {epochs})")
        self.max_start = max(1, min(self.config.max_start_epoch, epochs - self.config.expert_epochs + 1))
        if not (self.config.lr_init > 0 and 0 < self.config.lr_min <= self.config.lr_init):
            raise ConfigError(f"mtt.lr_init ({self.config.lr_init}) and mtt.lr_min ({self.config.lr_min}) must be "
                              "positive with lr_min <= lr_init")
        if self.config.composition not in COMPOSITIONS:
            raise ConfigError(f"mtt.composition must be {'|'.join(COMPOSITIONS)}, got {self.config.composition!r}")
        self.syn_lr = nn.Parameter(torch.tensor(float(self.config.lr_init), device=ctx.device))
        for p in self.net.parameters():
            p.requires_grad_(False)

    def _unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        out, i = {}, 0
        for name, shape in zip(self.names, self.shapes):
            n = math.prod(shape)
            out[name] = flat[i:i + n].view(shape)
            i += n
        return out

    @property
    def lr(self) -> Tensor:
        return self.syn_lr

    def loss(self, images: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        """Unroll on minibatches of the given (already composed) ``images``."""
        return self.unrolled_loss(lambda idx: (images[idx], labels[idx]), images.shape[0], generator)

    def unrolled_loss(self, draw: StepDraw, n: int, generator: torch.Generator) -> Tensor:
        """The matching loss with each unrolled step's minibatch made by ``draw`` from ``batch_syn`` (or all
        ``n``) random indices — ``draw`` may compose them afresh (``composition="per_step"``)."""
        device = self.ctx.device
        e = int(torch.randint(len(self.trajectories), (1,), generator=generator))
        t = int(torch.randint(self.max_start, (1,), generator=generator))
        traj = self.trajectories[e]
        start = traj[t].to(device)
        target = traj[t + self.config.expert_epochs].to(device)
        params = start.clone().requires_grad_(True)
        lr = self.lr
        batch = self.config.batch_syn or n
        self.net.train()
        for _ in range(self.config.syn_steps):
            idx = torch.randperm(n, generator=generator)[:batch].to(device)
            x, y = draw(idx)
            if self.ctx.dsa is not None:
                x = self.ctx.dsa(x, generator=generator)
            ce = F.cross_entropy(self.forward(functional_call, self.net, self._unflatten(params), (x,)), y)
            (grad,) = torch.autograd.grad(ce, params, create_graph=True)
            params = params - lr * grad
        num = ((params - target) ** 2).sum()
        den = ((start - target) ** 2).sum().clamp_min(1e-12)
        return num / den

    def extra_parameters(self) -> list[nn.Parameter]:
        return [self.syn_lr]

    def after_step(self) -> None:
        """Keep α positive after its SGD step (clamped at ``lr_min``)."""
        with torch.no_grad():
            self.syn_lr.clamp_(min=self.config.lr_min)

    def learned_lr(self) -> float:
        return float(self.lr.detach())

    def state_dict(self) -> dict:
        return {"lr": self.syn_lr.detach().clone()}

    def load_state_dict(self, state: dict) -> None:
        if "lr" not in state:
            if "log_lr" in state:
                raise FormatError("this checkpoint stores MTT's learning rate as log α (written before the fix of "
                                  "issue 15, when α barely learned); it cannot be resumed: start the run again")
            raise FormatError("checkpoint lacks MTT's learned learning rate ('lr')")
        value = state["lr"]
        if not isinstance(value, torch.Tensor) or value.numel() != 1 or not bool(torch.isfinite(value).all()) \
                or float(value) <= 0:
            raise FormatError("checkpoint's MTT learning rate must be one finite positive number")
        with torch.no_grad():
            self.syn_lr.copy_(value.reshape(()).to(self.syn_lr.device))


register(ObjectiveSpec("mtt", lambda cfg, ctx, trajectories: MTTObjective(ctx, cfg.mtt, trajectories), lr_bases=100.0,
                       dsa="default-on", stored_numbers=1, needs_trajectories=True,
                       summary="trajectory matching (Cazenavette et al. 2022)"))
