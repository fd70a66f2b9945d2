"""Seeding and device selection shared by every entry point."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .errors import ConfigError


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def deterministic_cuda() -> None:
    """Make CUDA kernels deterministic (same seed, same GPU → same tensors).

    cuDNN autotuning and atomics-based kernels otherwise differ run to run (~1e-3 after a few
    iterations was measured on an H200). ``warn_only`` keeps an operation with no deterministic CUDA
    kernel usable instead of failing it. Deterministic mode would also fill every new tensor with NaN
    (one extra kernel per allocation: ~1/3 of a DM iteration's launches on an H200, where the iteration is
    launch-bound); no code here reads uninitialised memory, so that fill is switched off.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N`` to a torch device; ``auto`` picks CUDA when available.

    Choosing CUDA also switches its kernels to deterministic ones (:func:`deterministic_cuda`).
    """
    if isinstance(device, torch.device):
        if device.type == "cuda":
            deterministic_cuda()
        return device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda") from exc
    if resolved.type == "cuda":
        deterministic_cuda()
    return resolved
