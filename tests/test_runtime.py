"""Device set-up: the deterministic-CUDA switches and what they leave on."""

import os

import torch

from haba_core.runtime import deterministic_cuda


def test_deterministic_cuda_sets_flags_without_nan_fill(monkeypatch):
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.utils.deterministic.fill_uninitialized_memory)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        deterministic_cuda()
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        # the NaN fill of every new tensor is an extra kernel per allocation; nothing reads uninitialised memory
        assert torch.utils.deterministic.fill_uninitialized_memory is False
        assert torch.empty(4).shape == (4,)
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        torch.utils.deterministic.fill_uninitialized_memory = saved[4]
