"""Evaluation protocol: train fresh networks on a distilled set with online composition, test on real data.

The literature's schedule: SGD (momentum 0.9, weight decay 5e-4), learning rate ×0.1 at half the
epochs, DSA augmentation on every minibatch, batch 256. Trajectory-matching results start from their
learned learning rate on the network it was learned through (:func:`evaluation_lr`). Every epoch each basis
passes through a randomly chosen hallucinator (batched, no gradients) — the hallucinators act as learned,
online data augmentors (paper Sec. 4.1).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .adversary import supervised_contrastive_loss
from .augment import DSA
from .data import ImageDataset
from .errors import ConfigError
from .collection import FactorizedCollection
from .factorized_dataset import FactorizedDataset
from .networks import get_network
from .objectives import seeded_network
from .runtime import resolve_device


DEFAULT_LR = 0.01
LEARNED_LR_SCOPES = ("same-network", "every-network")


@dataclass
class EvalConfig:
    """Downstream training settings.

    ``lr=None`` picks the rate from the set (:func:`evaluation_lr`): its learned lr (trajectory matching) on
    the network it was learned through, else ``DEFAULT_LR``; ``learned_lr_on="every-network"`` applies the
    learned lr to every architecture, as MTT's and HaBa's public evaluation code does.

    ``hallucinations_per_basis``: how many distinct hallucinators each basis goes through per epoch
    (1 = the paper's protocol, where the hallucinators act as online augmentors and an epoch has |B|
    images; larger values train on more composed images per epoch at the same stored bytes).
    """

    arch: str = "ConvNet"
    runs: int = 5
    epochs: int = 300
    lr: float | None = None
    learned_lr_on: str = "same-network"
    batch_size: int = 256
    momentum: float = 0.9
    weight_decay: float = 5e-4
    dsa: bool = True
    contrastive: float = 0.0
    net_width: int = 128
    net_depth: int = 3
    net_norm: str = "instancenorm"
    seed: int = 0
    device: str = "auto"
    test_batch_size: int = 1024
    hallucinations_per_basis: int = 1


@dataclass
class EvalResult:
    arch: str
    accuracies: list[float]
    epochs: int
    train_seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def also(self, name: str) -> "EvalResult":
        """The same networks' scores on the held-out set ``name`` of ``evaluate(..., also=...)`` (e.g. ``"val"``)."""
        return EvalResult(self.arch, list(self.extra["also"][name]), self.epochs, self.train_seconds)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(mean=self.mean, std=self.std, runs=len(self.accuracies))
        return d


def evaluation_lr(data: FactorizedDataset | FactorizedCollection, config: EvalConfig) -> float:
    """The downstream learning rate: ``config.lr`` if given; else the set's learned lr where it applies, else
    ``DEFAULT_LR``. A learned lr was learned through one network (ConvNet at CPU scale, ≈ 0.04) and can break
    others (VGG11 trains to 14–19 % at it, 38 % at 0.01; BENCHMARKS.md), so by default it is used only on that
    network — or on any network when the set does not say which."""
    if config.lr is not None:
        return config.lr
    if config.learned_lr_on not in LEARNED_LR_SCOPES:
        raise ConfigError(f"learned_lr_on must be one of {', '.join(LEARNED_LR_SCOPES)}, got {config.learned_lr_on!r}")
    learned = data.learned_lr
    if learned is None:
        return DEFAULT_LR
    network = data.learned_lr_network
    if config.learned_lr_on == "every-network" or network is None or network.lower() == config.arch.lower():
        return learned
    return DEFAULT_LR


def build_eval_network(config: EvalConfig, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    kwargs = {}
    if config.arch.lower() == "convnet":
        kwargs = {"width": config.net_width, "depth": config.net_depth, "norm": config.net_norm}
    return get_network(config.arch, image_shape[0], num_classes, image_shape[1], **kwargs)


@torch.no_grad()
def test_accuracy(net: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy in percent."""
    net.eval()
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        out = net(images[start:start + batch_size])
        correct += int((out.argmax(1) == labels[start:start + batch_size]).sum())
    return 100.0 * correct / max(1, images.shape[0])


EpochCallback = Callable[[int, int, float], None]  # (run, epoch, last minibatch loss)


def train_on_synthetic(net: nn.Module, data: FactorizedDataset | FactorizedCollection, config: EvalConfig, generator: torch.Generator,
                       lr: float, on_epoch: Optional[Callable[[int, float], None]] = None) -> nn.Module:
    """Train ``net`` on ``data`` with online composition per epoch and per-sample DSA.

    ``on_epoch(epoch, loss)`` is called after every epoch (e.g. a progress bar).
    """
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[max(1, config.epochs // 2)], gamma=0.1)
    dsa = DSA() if config.dsa else None
    device = next(net.parameters()).device
    for epoch in range(config.epochs):
        net.train()
        loss = None
        images, labels = data.sample_epoch(generator, config.hallucinations_per_basis)
        perm = torch.randperm(images.shape[0], generator=generator).to(device)
        for start in range(0, images.shape[0], config.batch_size):
            idx = perm[start:start + config.batch_size]
            x, y = images[idx], labels[idx]
            if dsa is not None:
                x = dsa(x, generator=generator)
            if (config.contrastive and isinstance(data, FactorizedDataset) and data.num_hallucinators > 1
                    and config.hallucinations_per_basis == 1):
                # paper Tab. 4 last row: L_con between two hallucinations of the same bases downstream
                h = torch.randint(data.num_hallucinators, (idx.numel(),), generator=generator).to(device)
                with torch.no_grad():
                    x2 = data.synthetic.compose(idx, h)
                logits, feats = net(torch.cat([x, x2]), return_features=True)
                groups = torch.cat([idx, idx])
                loss = F.cross_entropy(logits[: x.shape[0]], y) + config.contrastive * supervised_contrastive_loss(
                    feats, torch.cat([y, y]), groups=groups)
            else:
                loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        if on_epoch is not None:
            on_epoch(epoch, float("nan") if loss is None else float(loss.detach()))
    return net


def evaluate(data: FactorizedDataset | FactorizedCollection, test: ImageDataset, config: EvalConfig | None = None,
             on_epoch: Optional[EpochCallback] = None, also: Mapping[str, ImageDataset] | None = None) -> EvalResult:
    """Train ``config.runs`` fresh ``config.arch`` networks on ``data`` and report test accuracy (mean ± std).

    ``on_epoch(run, epoch, loss)`` is called after every training epoch of every run. ``also`` names further
    held-out sets scored by the same trained networks (e.g. a validation split beside the test split, from one
    training); their per-run accuracies are in ``result.extra["also"][name]``.
    """
    config = config or EvalConfig()
    device = resolve_device(config.device)
    data.to(device)
    test_x = data.preprocessor(test.images.to(device))
    test_y = test.labels.to(device)
    others = {name: (data.preprocessor(ds.images.to(device)), ds.labels.to(device))
              for name, ds in (also or {}).items()}
    also_accs: dict[str, list[float]] = {name: [] for name in others}
    lr = evaluation_lr(data, config)
    accs: list[float] = []
    t0 = time.perf_counter()
    for run in range(config.runs):
        gen = torch.Generator().manual_seed(config.seed * 1000 + run)
        net = seeded_network(lambda: build_eval_network(config, data.image_shape, data.num_classes), gen, device)
        hook = None if on_epoch is None else (lambda epoch, loss, run=run: on_epoch(run, epoch, loss))
        train_on_synthetic(net, data, config, gen, lr, hook)
        accs.append(test_accuracy(net, test_x, test_y, config.test_batch_size))
        for name, (x, y) in others.items():
            also_accs[name].append(test_accuracy(net, x, y, config.test_batch_size))
    extra = {"lr": lr, "also": also_accs} if others else {"lr": lr}
    return EvalResult(config.arch, accs, config.epochs, time.perf_counter() - t0, extra)
