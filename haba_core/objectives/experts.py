"""Expert trajectories for trajectory matching: train N networks on real data, store their parameters.

Each expert is one safetensors shard ``expert_XXXX.safetensors`` holding ``trajectory`` of shape
(epochs + 1, P): the flattened parameters at the start and after each epoch. ``buffer.json``
records how the buffer was made so a distillation run can check it matches. Training is resumable
expert by expert: finished shards are kept and skipped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from ..atomic import write_json, write_safetensors
from ..augment import DSA
from ..errors import FormatError


@dataclass
class ExpertConfig:
    """How experts are trained (MTT buffer.py defaults: SGD lr 0.01, no momentum, no weight decay)."""

    num_experts: int = 10
    epochs: int = 50
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    dsa: bool = True
    seed: int = 0


def flat_parameters(net: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()]).cpu()


def shard_path(directory: Path, index: int) -> Path:
    return directory / f"expert_{index:04d}.safetensors"


def train_experts(images: Tensor, labels: Tensor, make_network: Callable[[torch.Generator], nn.Module],
                  out_dir: str | Path, config: ExpertConfig, meta: dict,
                  on_epoch: Callable[[int, int, float], None] | None = None) -> list[Path]:
    """Train ``config.num_experts`` experts on preprocessed ``images`` and store their trajectories.

    ``meta`` (dataset, network, preprocessing) is written to ``buffer.json`` together with the config.
    Existing complete shards are kept (resume). ``on_epoch(expert, epoch, loss)`` reports progress.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = {"format": "haba-expert-buffer", "version": 1, "config": asdict(config), **meta}
    buffer_json = out / "buffer.json"
    if buffer_json.exists():
        old = json.loads(buffer_json.read_text())
        if {k: v for k, v in old.items() if k != "config"} != {k: v for k, v in info.items() if k != "config"}:
            raise FormatError(f"{out} holds a buffer made with other settings; use a new --out directory")
    write_json(buffer_json, info)
    dsa = DSA() if config.dsa else None
    device = images.device
    paths = []
    for e in range(config.num_experts):
        path = shard_path(out, e)
        paths.append(path)
        if path.exists():
            continue
        gen = torch.Generator().manual_seed(config.seed * 100003 + e)
        net = make_network(gen).to(device)
        opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum,
                              weight_decay=config.weight_decay)
        trajectory = [flat_parameters(net)]
        for epoch in range(config.epochs):
            perm = torch.randperm(images.shape[0], generator=gen).to(device)
            total, count = 0.0, 0
            for start in range(0, images.shape[0], config.batch_size):
                idx = perm[start:start + config.batch_size]
                x = images[idx]
                if dsa is not None:
                    x = dsa(x, generator=gen)
                loss = F.cross_entropy(net(x), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * idx.numel()
                count += idx.numel()
            trajectory.append(flat_parameters(net))
            if on_epoch is not None:
                on_epoch(e, epoch, total / max(count, 1))
        write_safetensors(path, {"trajectory": torch.stack(trajectory)})
    return paths


def load_buffer(directory: str | Path) -> tuple[dict, list[Tensor]]:
    """Read ``buffer.json`` and every expert trajectory; raise :class:`FormatError` if unusable."""
    directory = Path(directory)
    meta_path = directory / "buffer.json"
    if not meta_path.exists():
        raise FormatError(f"{directory} is not an expert buffer (no buffer.json); create one with haba-buffer")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise FormatError(f"{meta_path} is not valid JSON: {exc}") from exc
    shards = sorted(directory.glob("expert_*.safetensors"))
    if not shards:
        raise FormatError(f"{directory} holds no expert trajectories (expert_*.safetensors)")
    trajectories = []
    for shard in shards:
        try:
            traj = load_file(str(shard))["trajectory"]
        except (SafetensorError, KeyError, OSError) as exc:
            raise FormatError(f"unreadable expert shard {shard}: {exc}") from exc
        if traj.ndim != 2 or traj.shape[0] < 2:
            raise FormatError(f"expert shard {shard} has shape {tuple(traj.shape)}, expected (epochs+1, P)")
        trajectories.append(traj.float())
    return meta, trajectories
