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
from ..data.validation import MAX_VAL_PER_CLASS, is_val_per_class
from ..errors import ConfigError, FormatError


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


def read_buffer_info(directory: str | Path) -> dict:
    """``buffer.json`` of an expert buffer (how it was made); :class:`FormatError` if missing or not a JSON object."""
    meta_path = Path(directory) / "buffer.json"
    if not meta_path.is_file():
        raise FormatError(f"{directory} is not an expert buffer (no buffer.json); create one with haba-buffer")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{meta_path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise FormatError(f"{meta_path} must hold a JSON object, got {type(meta).__name__}")
    return meta


def buffer_val_per_class(meta: dict) -> int:
    """The validation split (images per class, ``haba_core.validation_split``) the buffer's experts never saw;
    0 when they trained on the whole training split. Raises :class:`FormatError` on a malformed value."""
    value = meta.get("val_per_class", 0)
    if not is_val_per_class(value):
        raise FormatError(f"buffer.json: val_per_class must be an integer in 0..{MAX_VAL_PER_CLASS}, got {value!r}")
    return value


def check_buffer_split(meta: dict, val_per_class: int, where: str = "the expert buffer") -> None:
    """Refuse experts that trained on a run's validation images: a run that carves ``val_per_class`` images
    per class (> 0) needs a buffer made with the same split (``haba-buffer --val-per-class``). A buffer with a
    split serves a run without one (its experts just saw fewer images)."""
    made_with = buffer_val_per_class(meta)
    if val_per_class and made_with != val_per_class:
        seen = ("its experts trained on the validation images" if made_with == 0
                else f"its experts held out another split ({made_with} per class)")
        raise ConfigError(f"{where} was made with val_per_class={made_with} but this run holds out {val_per_class} "
                          f"images per class: {seen}; make one with haba-buffer --val-per-class {val_per_class}")


def load_buffer(directory: str | Path) -> tuple[dict, list[Tensor]]:
    """Read ``buffer.json`` and every expert trajectory; raise :class:`FormatError` if unusable."""
    directory = Path(directory)
    meta = read_buffer_info(directory)
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
